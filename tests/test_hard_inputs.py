"""Hard inputs and faults (issue 19): a catalogue of bad images, options, configs, model files,
landmark files and output faults, each run through the ``prdlfit`` command line.

Every row asserts the exit code, one ``error:`` line naming the input, no traceback, and (rows
with ``good=True``) that the good photo given in the same call was fitted and its folder is
complete. Fits use the synthetic sphere model of test_outputs (loads instantly) with
``--iters 0 --rigid-iters 2``; rows that need a real face use the 3DDFA-V3 example photo from
the shared data and skip without it. Below the catalogue: the same rules through the Python API
(config dataclasses, crop rotation, the window-rasterized parts map, batch resume).
"""
from __future__ import annotations

import errno
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FAKE_BACKEND as FAKE
from conftest import make_corpus, make_fake_fit, make_fake_model

from fitter.cli import main
from fitter.config import FitConfig

FIT_FAST = ["--iters", "0", "--rigid-iters", "2", "--device", "cpu", "--no-overlay", "-q"]
COMPLETE = {"mesh.obj", "mesh.ply", "fit.npz", "fit.json", "landmarks2d.npy", "landmarks3d.npy", "parts.png",
            "curves.csv", "curves.png"}


@pytest.fixture(scope="module")
def face_photo(shared):
    p = shared / "images" / "3ddfa-v3-examples" / "1.jpg"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    pytest.importorskip("mediapipe")
    return p


# ====================================================================== the catalogue
@dataclass
class Ctx:
    """What a row's setup gets: a scratch folder, the fake model, and the fixtures it may need."""

    tmp: Path
    model: Path
    request: pytest.FixtureRequest
    monkeypatch: pytest.MonkeyPatch

    def photo(self, name: str = "good.jpg") -> Path:
        """A copy of the real face photo (skips without the shared data)."""
        src = self.request.getfixturevalue("face_photo")
        dst = self.tmp / name
        dst.write_bytes(src.read_bytes())
        return dst

    def fit(self, *images, extra: Tuple[str, ...] = ()) -> List[str]:
        return ["fit", *map(str, images), "-o", str(self.tmp / "out"), "--model", str(self.model), *FIT_FAST, *extra]


@dataclass
class Row:
    """One case: ``setup(ctx) -> (argv, names)``; ``names`` must appear in the error line."""

    id: str
    kind: str  # image | option | config | model | landmarks | output | batch | curves
    setup: Callable[[Ctx], Tuple[List[str], List[str]]]
    code: int
    message: str  # a piece of the error line (case-insensitive)
    good: Optional[str] = None  # stem of a good photo in the same call whose folder must be complete


def _config(ctx: Ctx, text: str) -> Path:
    p = ctx.tmp / "cfg.yaml"
    p.write_text(text)
    return p


def _cfg_row(key_value: str):
    def setup(ctx):
        cfg = _config(ctx, key_value + "\n")
        return ctx.fit("a.jpg", extra=("--config", str(cfg))), [str(cfg), key_value.split(":")[0]]
    return setup


def _unreadable(ctx):
    good, bad = ctx.photo(), ctx.photo("locked.jpg")
    real = Path.read_bytes

    def read_bytes(self):  # tests run as root, where chmod 000 does not stop a read
        if self.name == "locked.jpg":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    ctx.monkeypatch.setattr(Path, "read_bytes", read_bytes)
    return ctx.fit(good, bad), [str(bad)]


def _truncated(ctx):
    good = ctx.photo()
    bad = ctx.tmp / "cut.jpg"
    bad.write_bytes(good.read_bytes()[:2000])
    return ctx.fit(good, bad), [str(bad)]


def _not_image(ctx):
    good = ctx.photo()
    bad = ctx.tmp / "notes.png"
    bad.write_text("not a photo at all\n")
    return ctx.fit(good, bad), [str(bad)]


def _disk_full(ctx):
    good, bad = ctx.photo(), ctx.photo("full.jpg")
    import fitter.outputs.writer as W

    real = W.write_png

    def write_png(path, image):  # the disk fills up while the second image's outputs are written
        if Path(path).parent.name == "full":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, image)

    ctx.monkeypatch.setattr(W, "write_png", write_png)
    return ctx.fit(good, bad), [str(bad), "No space left on device"]


def _landmarks_off_image(ctx):
    photo = ctx.photo("face.jpg")
    lm = ctx.tmp / "face.npy"
    np.save(lm, np.stack([np.linspace(5000, 6000, 68), np.full(68, -900.0)], 1))
    return ctx.fit(photo, extra=("--landmarks", str(lm))), [str(lm), "outside"]


def _landmarks_one_file_two_images(ctx):
    lm = ctx.tmp / "pts.npy"
    np.save(lm, np.zeros((68, 2)))
    return ctx.fit("a.jpg", "b.jpg", extra=("--landmarks", str(lm))), [str(lm)]


def _random_model(ctx):
    bad = ctx.tmp / "model.npz"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    return ["fit", "a.jpg", "-o", str(ctx.tmp / "out"), "--model", str(bad), *FIT_FAST], [str(bad)]


def _output_not_writable(ctx):
    (ctx.tmp / "file").write_text("x")  # root can write anywhere: a path below a file cannot be made
    out = ctx.tmp / "file" / "out"
    return ["fit", "a.jpg", "-o", str(out), "--model", str(ctx.model), *FIT_FAST], [str(out)]


def _output_locked(ctx):
    from fitter.outputs.folder import FolderLock

    out = ctx.tmp / "out"
    out.mkdir()
    lock = FolderLock(out, "prdlfit")  # as another `prdlfit fit` (or batch) run would hold it
    ctx.request.addfinalizer(lock.release)
    return ctx.fit("a.jpg"), [str(out), "another"]


def _batch_all_fail(ctx):
    inp = ctx.tmp / "in"
    inp.mkdir()
    (inp / "a.jpg").write_text("not an image")
    (inp / "b.png").write_bytes(b"")
    return ["batch", str(inp), "-o", str(ctx.tmp / "bout"), "--model", "fake", "--backend", FAKE, "--workers", "0",
            "--no-progress", "--no-report", "--no-parquet"], [str(inp)]


def _batch_resume_other_settings(ctx):
    inp = ctx.tmp / "in"
    make_corpus(inp, good=2)
    base = ["batch", str(inp), "-o", str(ctx.tmp / "bout"), "--model", "fake", "--backend", FAKE, "--workers", "0",
            "--no-progress", "--no-report", "--no-parquet"]
    first = CliRunner().invoke(main, base + ["--iters", "3"])
    assert first.exit_code == 0, first.output
    return base + ["--iters", "5"], [str(ctx.tmp / "bout"), "fit.iters: 3 -> 5"]


def _curves_bad_suffix(ctx):
    res = ctx.request.getfixturevalue("fake_result")
    return ["curves", str(res), "-o", str(ctx.tmp / "x.xyz")], ["x.xyz", ".png"]


def _curves_truncated_snapshots(ctx):
    import shutil

    res = ctx.tmp / "res"
    shutil.copytree(ctx.request.getfixturevalue("fake_result"), res)
    snap = res / "snapshots.npz"
    snap.write_bytes(snap.read_bytes()[: snap.stat().st_size // 2])
    return ["curves", str(res), "-o", str(ctx.tmp / "c.png"), "--animate", str(ctx.tmp / "a.gif")], [str(snap)]


CATALOGUE = [
    # bad images next to a good one: the good one is fitted
    Row("image-permission-denied", "image", _unreadable, 1, "permission denied", good="good"),
    Row("image-truncated", "image", _truncated, 1, "corrupt or truncated", good="good"),
    Row("image-not-an-image", "image", _not_image, 1, "not an image", good="good"),
    # options: refused before any image work
    Row("option-loss-inf", "option", lambda c: (c.fit("a.jpg", extra=("--loss", "lmk=inf")), ["lmk"]), 2,
        "finite"),
    Row("option-lr-nan", "option", lambda c: (c.fit("a.jpg", extra=("--lr", "nan")), ["lr"]), 2, "finite"),
    Row("option-size-huge", "option", lambda c: (c.fit("a.jpg", extra=("--size", "100000")), ["size"]), 2,
        "<= 1024"),
    # config files: the key and the file are named
    Row("config-iters-abc", "config", _cfg_row("iters: abc"), 2, "must be an integer"),
    Row("config-size-abc", "config", _cfg_row("size: abc"), 2, "must be an integer"),
    Row("config-lr-fast", "config", _cfg_row("lr: fast"), 2, "must be a number"),
    Row("config-iters-bool", "config", _cfg_row("iters: yes"), 2, "must be an integer"),
    Row("config-margin-nan", "config", _cfg_row("margin: .nan"), 2, "finite"),
    # model files
    Row("model-random-bytes", "model", _random_model, 5, "is not a model file"),
    # landmark files
    Row("landmarks-off-image", "landmarks", _landmarks_off_image, 3, "landmark file"),
    Row("landmarks-one-file-two-images", "landmarks", _landmarks_one_file_two_images, 2, "one file but 2 images"),
    # output faults
    Row("output-not-writable", "output", _output_not_writable, 1, "cannot create output folder"),
    Row("output-locked-by-another-run", "output", _output_locked, 1, "is writing to"),
    Row("output-disk-full", "output", _disk_full, 1, "cannot write outputs", good="good"),
    # batch
    Row("batch-every-image-fails", "batch", _batch_all_fail, 1, "every image"),
    Row("batch-resume-other-settings", "batch", _batch_resume_other_settings, 2, "other settings"),
    # curves
    Row("curves-bad-suffix", "curves", _curves_bad_suffix, 2, "cannot write a figure"),
    Row("curves-truncated-snapshots", "curves", _curves_truncated_snapshots, 1, "truncated"),
]


@pytest.mark.parametrize("row", CATALOGUE, ids=[f"{r.kind}:{r.id}" for r in CATALOGUE])
def test_catalogue(row: Row, tmp_path, fake_model_file, request, monkeypatch):
    argv, names = row.setup(Ctx(tmp_path, fake_model_file, request, monkeypatch))
    r = CliRunner().invoke(main, argv)
    text = r.output + (r.stderr if r.stderr_bytes is not None else "")
    assert r.exit_code == row.code, text
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in text
    errors = [ln for ln in text.splitlines() if ln.lower().startswith("error: ")]
    assert errors, text
    hit = [ln for ln in errors if row.message.lower() in ln.lower() and all(n in ln for n in names)]
    assert hit, f"no error line with {row.message!r} and {names}: {errors}"
    out = tmp_path / "out"
    if row.good:
        assert COMPLETE <= {p.name for p in (out / row.good).iterdir()}, "good outputs not intact"
        json.loads((out / row.good / "fit.json").read_text())
    if out.is_dir():  # the failed image left nothing behind: no partial folder, no temporary files
        for d in out.iterdir():
            if d.is_dir():
                assert (d / "fit.json").is_file(), f"partial folder {d}: {[p.name for p in d.iterdir()]}"
        assert not list(out.rglob(".*.tmp*"))


# ====================================================================== the same rules in the API
@pytest.mark.parametrize("kw, message", [
    (dict(lr=float("nan")), "lr must be a finite number"),
    (dict(lr="fast"), "lr must be a number"),
    (dict(iters="abc"), "iters must be an integer"),
    (dict(iters=True), "iters must be an integer"),
    (dict(iters=2.5), "iters must be an integer"),
    (dict(loss_weights={"lmk": float("inf")}), "loss weight lmk must be a finite number"),
    (dict(anchors=(32, 0)), "anchors must be >= 1"),
    (dict(patience=0), "patience must be >= 1"),
])
def test_fit_config_refuses_bad_values(kw, message):
    with pytest.raises(ValueError, match=message):
        FitConfig(**kw)


def test_target_config_refuses_bad_values():
    from fitter.targets.pipeline import MAX_CROP_SIZE, TargetConfig

    with pytest.raises(ValueError, match=f"size must be <= {MAX_CROP_SIZE}"):
        TargetConfig(size=100000)
    with pytest.raises(ValueError, match="size must be an integer"):
        TargetConfig(size="abc")
    with pytest.raises(ValueError, match="preprocess.max_skin_points must be >= 1"):
        TargetConfig(preprocess={"max_skin_points": 0})
    assert TargetConfig(size=256.0).size == 256


def test_batch_config_checked_before_work(tmp_path):
    make_corpus(tmp_path / "in", good=1)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("fit:\n  lr: fast\n")
    r = CliRunner().invoke(main, ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--model", "fake",
                                  "--backend", FAKE, "--workers", "0", "--config", str(cfg)])
    assert r.exit_code == 2 and "lr must be a number" in r.output
    assert not (tmp_path / "o").exists()


def test_batch_resume_with_force_and_same_settings(tmp_path):
    make_corpus(tmp_path / "in", good=2)
    base = ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--model", "fake", "--backend", FAKE,
            "--workers", "0", "--no-progress", "--no-report", "--no-parquet"]
    r = CliRunner().invoke(main, base + ["--iters", "3"])
    assert r.exit_code == 0, r.output  # some bad images in the corpus, the good ones fitted
    assert json.loads((tmp_path / "o" / "settings.json").read_text())["fit"]["iters"] == 3
    r = CliRunner().invoke(main, base + ["--iters", "3", "--device", "cpu"])  # the device may change
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, base + ["--iters", "4", "--force"])
    assert r.exit_code == 0 and "--force: settings differ" in r.output + r.stderr
    assert json.loads((tmp_path / "o" / "settings.json").read_text())["fit"]["iters"] == 4


def test_crop_rotation_maps_points_and_pixels_both_ways():
    import cv2

    from fitter.targets.crop import compose, labels_to_original, rot90_transform, square_crop

    img = np.arange(7 * 5, dtype=np.uint8).reshape(5, 7)
    for k in range(4):
        t = rot90_transform(7, 5, k)
        turned = np.rot90(img, k)
        assert t.size == turned.shape[::-1]
        assert np.array_equal(cv2.warpAffine(img, t.matrix(), t.size, flags=cv2.INTER_NEAREST), turned)
        assert np.array_equal(labels_to_original(np.ascontiguousarray(turned), t), img)
        crop = compose(square_crop((1, 1, 4, 3), t.size, size=32), t)
        xy = np.array([[0.0, 0.0], [6.0, 4.0], [2.5, 1.25]])
        assert np.allclose(crop.to_original(crop.to_crop(xy)), xy)
        assert crop.rotation == k


def test_upside_down_photo_is_fitted_at_its_roll(face_photo):
    from PIL import Image

    from fitter.targets.pipeline import build_targets

    upright = build_targets(str(face_photo))[0]
    im = Image.open(face_photo)
    flipped = np.ascontiguousarray(np.asarray(im.convert("RGB"))[::-1, ::-1])  # turned by 180 degrees
    t = build_targets(flipped)[0]
    assert t.meta["rotation_deg"] == 180 and t.crop.rotation == 2
    W, H = im.size
    expect = np.array([W - 1, H - 1]) - upright.crop.to_original(upright.landmarks)
    err = np.linalg.norm(t.crop.to_original(t.landmarks) - expect, axis=1)
    assert np.median(err) < 3.0, np.median(err)  # the same landmarks, mapped back to the turned photo


def test_parts_map_window_equals_full_raster():
    import torch

    from fitter.geometry.raster import rasterize_labels
    from fitter.outputs.parts_map import part_label_map, points_in_original

    model = make_fake_model()
    result = make_fake_fit(model)
    got = part_label_map(result, model)
    tris = model.all_triangles
    pts = torch.from_numpy(points_in_original(result)).to(torch.float32)
    depth = torch.from_numpy(np.asarray(result.vertices_camera, np.float32)[:, 2])
    W, H = result.targets.crop.original_size
    full = rasterize_labels(pts[None], depth[None], tris, model.triangle_part_labels, (W, H))[0]
    assert got.shape == (H, W) and got.max() > 0
    assert (got != full.numpy().astype(np.uint8)).mean() < 1e-3


def test_failed_write_leaves_no_temp_file(tmp_path):
    from fitter.outputs.atomic import write_with_atomic

    def writer(tmp):
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        write_with_atomic(tmp_path / "x.png", writer)
    assert list(tmp_path.iterdir()) == []
