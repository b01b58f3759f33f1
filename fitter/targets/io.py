"""Robust photo reading: any common format -> [H, W, 3] uint8 RGB, upright, 8-bit.

Handles JPEG/PNG/BMP/WebP/TIFF/GIF (first frame), EXIF orientation, grayscale, palette, RGBA
(composited over white), 16-bit and float images. Missing, empty, corrupt, truncated and non-image
files raise :class:`fitter.errors.ImageReadError` with a one-line message naming the file.

Huge photos (more than ``max_pixels`` or a side longer than ``max_side``) are reduced while decoding
(JPEG draft mode decodes at 1/2, 1/4 or 1/8 directly, possibly below the limit) or resized after
decoding (other formats), so memory stays bounded;
:class:`LoadedImage` records the scale so results map back to the original pixels.
"""
from __future__ import annotations

import io as _io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple, Union

import numpy as np

from fitter.errors import ImageReadError

#: Photos larger than this (pixels) are downscaled on read (a 4000x4000 photo and below are read
#: as they are; the fit works on a 224-pixel crop, so a bigger decode only costs memory).
MAX_PIXELS = 16_000_000
#: Photos with a side longer than this (pixels) are downscaled on read.
MAX_SIDE = 8192
#: Refuse to decode anything claiming more pixels than this (decompression bombs; Pillow's own
#: limit, 2 x ``PIL.Image.MAX_IMAGE_PIXELS`` = 179 MP by default, applies first).
REFUSE_PIXELS = 1_000_000_000

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview]


@dataclass
class LoadedImage:
    """A decoded photo.

    Attributes:
        rgb: [H, W, 3] uint8 RGB pixels (possibly downscaled, see ``scale``), C-contiguous.
        scale: pixels of ``rgb`` per original pixel (1.0 unless the photo was huge).
        original_size: (width, height) of the upright (EXIF-rotated) original photo.
        source: file path, or ``"<bytes>"`` for in-memory input.
    """

    rgb: np.ndarray
    scale: float
    original_size: Tuple[int, int]
    source: str


def _name_of(src: ImageSource) -> str:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return "<bytes>"
    return os.fspath(src)


def _open_bytes(src: ImageSource, name: str) -> bytes:
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    else:
        path = Path(src)
        if not path.exists():
            raise ImageReadError(f"cannot read image {name}: file not found")
        if path.is_dir():
            raise ImageReadError(f"cannot read image {name}: is a directory")
        try:
            data = path.read_bytes()
        except PermissionError:
            raise ImageReadError(f"cannot read image {name}: permission denied") from None
        except OSError as err:
            raise ImageReadError(f"cannot read image {name}: {err.strerror or err}") from None
    if len(data) == 0:
        raise ImageReadError(f"cannot read image {name}: file is empty (0 bytes)")
    return data


def _to_uint8_rgb(img) -> np.ndarray:
    """A loaded PIL image of any mode -> [H, W, 3] uint8 RGB."""
    from PIL import Image

    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(img, dtype=np.float64)
        # 16-bit data (the usual case for mode I from PNG) -> 8 bit; wider ranges are rescaled.
        hi = 65535.0 if a.max(initial=0) <= 65535 else float(a.max())
        a = np.clip(a, 0, hi) * (255.0 / hi)
        g = np.round(a).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        hi = 1.0 if a.max(initial=0) <= 1.0 else (255.0 if a.max() <= 255.0 else 65535.0)
        g = np.round(np.clip(a, 0, hi) * (255.0 / hi)).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


def _reduction(width: int, height: int, max_pixels: int, max_side: int) -> float:
    """Scale factor (<= 1) that brings a width x height photo within the limits."""
    s = 1.0
    if width * height > max_pixels:
        s = min(s, math.sqrt(max_pixels / float(width * height)))
    if max(width, height) > max_side:
        s = min(s, max_side / float(max(width, height)))
    return s


def load_image(src: ImageSource, max_pixels: int = MAX_PIXELS, max_side: int = MAX_SIDE) -> LoadedImage:
    """Decode a photo into upright 8-bit RGB, downscaling huge ones.

    Args:
        src: a file path, or the encoded file content as bytes.
        max_pixels, max_side: photos beyond either limit are reduced to fit (scale recorded).
    Returns:
        :class:`LoadedImage`.
    Raises:
        ImageReadError: missing, empty, non-image, corrupt or truncated input (message names it).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    name = _name_of(src)
    data = _open_bytes(src, name)
    try:
        with warnings.catch_warnings():
            # Size is bounded below (draft decoding, REFUSE_PIXELS); Pillow still refuses beyond
            # 2 x Image.MAX_IMAGE_PIXELS (DecompressionBombError).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(_io.BytesIO(data))
            img.seek(0)
            w0, h0 = img.size
            if w0 <= 0 or h0 <= 0:
                raise ImageReadError(f"cannot read image {name}: zero-size image ({w0}x{h0})")
            if w0 * h0 > REFUSE_PIXELS:
                raise ImageReadError(f"cannot read image {name}: {w0}x{h0} pixels is too large to decode")
            s = _reduction(w0, h0, max_pixels, max_side)
            if s < 1.0 and img.format == "JPEG":
                # Decode directly at 1/2, 1/4 or 1/8 resolution (bounded memory); asking for half the
                # allowed size lets the decoder pick the next power of two below the limit.
                img.draft(img.mode, (max(1, int(w0 * s * 0.5)), max(1, int(h0 * s * 0.5))))
            img.load()
            orientation = img.getexif().get(0x0112, 1) if hasattr(img, "getexif") else 1
            img = ImageOps.exif_transpose(img)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"cannot read image {name}: not an image file (or an unsupported format)") from None
    except Image.DecompressionBombError:
        raise ImageReadError(f"cannot read image {name}: image is too large to decode safely") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ImageReadError(f"cannot read image {name}: corrupt or truncated file ({msg})") from None

    # Original size in upright orientation (EXIF rotations by 90/270 degrees swap the sides).
    orig = (h0, w0) if orientation in (5, 6, 7, 8) else (w0, h0)
    rgb = _to_uint8_rgb(img)
    H, W = rgb.shape[:2]
    s_now = _reduction(W, H, max_pixels, max_side)
    if s_now < 1.0:
        import cv2

        W, H = max(1, int(round(W * s_now))), max(1, int(round(H * s_now)))
        rgb = cv2.resize(rgb, (W, H), interpolation=cv2.INTER_AREA)
    scale = W / float(orig[0])
    return LoadedImage(rgb=np.ascontiguousarray(rgb), scale=scale, original_size=orig, source=name)


def read_image(src: ImageSource, max_pixels: int = MAX_PIXELS, max_side: int = MAX_SIDE) -> np.ndarray:
    """Decode a photo into an upright [H, W, 3] uint8 RGB array.

    Huge photos come back downscaled (see :func:`load_image` for the scale). Raises
    :class:`ImageReadError` naming the file for missing/empty/corrupt/truncated/non-image input.
    """
    return load_image(src, max_pixels=max_pixels, max_side=max_side).rgb
