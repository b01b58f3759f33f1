"""Robust photo reading: every format / bad-input case of fitter.targets.io."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from fitter.errors import ImageReadError
from fitter.targets.io import load_image, read_image


def _pattern(w=40, h=30):
    """RGB test pattern with a distinct corner pixel colour."""
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    a[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    a[:5, :5] = (255, 0, 0)  # red block at the top-left
    return a


def _save(arr, path, **kw):
    Image.fromarray(arr).save(path, **kw)
    return path


# ---------------------------------------------------------------- refusals
def test_missing_file(tmp_path):
    p = tmp_path / "nope.jpg"
    with pytest.raises(ImageReadError, match="nope.jpg.*not found"):
        read_image(p)


def test_zero_bytes(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.png.*empty"):
        read_image(p)


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (200, 200, 3), dtype=np.uint8)).save(buf, "JPEG")
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageReadError, match="cut.jpg.*(truncated|corrupt)"):
        read_image(p)


def test_text_file_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a photo\n")
    with pytest.raises(ImageReadError, match="notes.jpg.*not an image"):
        read_image(p)


def test_directory(tmp_path):
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)


def test_corrupt_png_body(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_pattern()).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[60:80] = b"\x00" * 20  # damage the image data chunk
    p = tmp_path / "bad.png"
    p.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="bad.png"):
        read_image(p)


def test_error_message_is_one_line(tmp_path):
    p = tmp_path / "x.jpg"
    p.write_text("garbage")
    with pytest.raises(ImageReadError) as e:
        read_image(p)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- formats
@pytest.mark.parametrize("fmt,suffix", [("PNG", ".png"), ("BMP", ".bmp"), ("WEBP", ".webp"), ("TIFF", ".tif")])
def test_lossless_formats_round_trip(tmp_path, fmt, suffix):
    a = _pattern()
    kw = {"lossless": True} if fmt == "WEBP" else {}
    p = _save(a, tmp_path / f"img{suffix}", format=fmt, **kw)
    b = read_image(p)
    assert b.dtype == np.uint8 and b.shape == a.shape
    assert np.abs(b.astype(int) - a).max() <= 1


def test_jpeg_and_bytes_input(tmp_path):
    a = _pattern()
    p = _save(a, tmp_path / "img.jpg", quality=95)
    b = read_image(p)
    c = read_image(p.read_bytes())
    assert b.shape == a.shape and np.array_equal(b, c)
    assert np.abs(b.astype(int) - a).mean() < 6
    assert load_image(p.read_bytes()).source == "<bytes>"


def test_grayscale_becomes_three_channels(tmp_path):
    g = np.arange(600, dtype=np.uint8).reshape(20, 30)
    b = read_image(_save(g, tmp_path / "g.png"))
    assert b.shape == (20, 30, 3)
    assert np.array_equal(b[..., 0], g) and np.array_equal(b[..., 1], g) and np.array_equal(b[..., 2], g)


def test_rgba_composited_over_white(tmp_path):
    a = np.zeros((10, 10, 4), np.uint8)
    a[..., 0] = 200
    a[:, :5, 3] = 255  # left half opaque red-ish, right half fully transparent
    b = read_image(_save(a, tmp_path / "a.png"))
    assert b.shape == (10, 10, 3)
    assert tuple(b[0, 0]) == (200, 0, 0)
    assert tuple(b[0, 9]) == (255, 255, 255)


def test_palette_with_transparency(tmp_path):
    a = Image.fromarray(_pattern()).convert("P")
    a.info["transparency"] = 0
    p = tmp_path / "p.png"
    a.save(p, transparency=0)
    b = read_image(p)
    assert b.shape == (30, 40, 3) and b.dtype == np.uint8


def test_16bit_gray_png(tmp_path):
    g = (np.linspace(0, 65535, 30 * 20).reshape(20, 30)).astype(np.uint16)
    p = tmp_path / "g16.png"
    assert cv2.imwrite(str(p), g)
    b = read_image(p)
    assert b.shape == (20, 30, 3) and b.dtype == np.uint8
    assert np.abs(b[..., 0].astype(float) - g / 257.0).max() <= 1.0


def test_16bit_rgb_png(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint16)
    rgb[..., 0] = 65535
    rgb[..., 2] = 32768
    p = tmp_path / "c16.png"
    assert cv2.imwrite(str(p), rgb[..., ::-1])  # cv2 writes BGR
    b = read_image(p)
    assert b.dtype == np.uint8 and b.shape == (20, 30, 3)
    assert abs(int(b[0, 0, 0]) - 255) <= 1 and b[0, 0, 1] == 0 and abs(int(b[0, 0, 2]) - 128) <= 1


def test_float_tiff(tmp_path):
    f = np.linspace(0, 1, 200, dtype=np.float32).reshape(10, 20)
    p = tmp_path / "f.tif"
    Image.fromarray(f, mode="F").save(p)
    b = read_image(p)
    assert b.shape == (10, 20, 3) and b[0, 0, 0] == 0 and b[-1, -1, 0] == 255


@pytest.mark.parametrize("orientation,expect_shape,red_at", [
    (6, (40, 30), (0, -1)),   # rotate 90 CW for display: top-left block goes to the top-right
    (8, (40, 30), (-1, 0)),   # rotate 90 CCW: top-left goes to the bottom-left
    (3, (30, 40), (-1, -1)),  # 180
])
def test_exif_orientation(tmp_path, orientation, expect_shape, red_at):
    a = _pattern(40, 30)
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = orientation
    p = tmp_path / "rot.jpg"
    img.save(p, exif=exif, quality=95)
    li = load_image(p)
    b = li.rgb
    assert b.shape[:2] == expect_shape
    assert li.original_size == (expect_shape[1], expect_shape[0])
    y, x = red_at
    y = 2 if y == 0 else b.shape[0] - 3
    x = 2 if x == 0 else b.shape[1] - 3
    r, g, bl = (int(v) for v in b[y, x])
    assert r > 200 and g < 60 and bl < 60


# ---------------------------------------------------------------- huge photos
def test_huge_png_is_downscaled_with_scale(tmp_path):
    a = np.zeros((600, 900, 3), np.uint8)
    a[:, 450:] = 255
    p = _save(a, tmp_path / "big.png")
    li = load_image(p, max_side=300)
    assert li.original_size == (900, 600)
    assert max(li.rgb.shape[:2]) == 300
    assert li.scale == pytest.approx(1 / 3, rel=1e-3)
    # the white/black edge is at original x = 450 -> 150 after scaling
    row = li.rgb[100, :, 0].astype(int)
    assert abs(int(np.argmax(row > 127)) - 150) <= 1


def test_huge_jpeg_uses_draft_and_pixel_limit(tmp_path):
    a = np.zeros((800, 1200, 3), np.uint8)
    p = _save(a, tmp_path / "big.jpg")
    li = load_image(p, max_pixels=100_000)
    assert li.rgb.shape[0] * li.rgb.shape[1] <= 100_000 * 1.01
    assert li.original_size == (1200, 800)
    assert li.scale == pytest.approx(li.rgb.shape[1] / 1200)
