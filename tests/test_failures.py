"""One failure classification by exception type (fitter.failures), one fallback (fitter.fallback)
used by ``prdlfit fit`` and ``prdlfit batch``, and the same fit.json from both commands."""
from __future__ import annotations

import errno
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fitter.errors import DiskFullError, FitError, ImageReadError, ModelError, NoFaceError, NonFiniteFitError, PrdlfitError
from fitter.failures import FAILURE_TABLE, classify, failure_type
from fitter.targets.landmark_files import LandmarkFileError


@pytest.mark.parametrize("err, stage, kind, code", [
    (ImageReadError("cannot read image a.jpg: file is empty"), "targets", "read", 3),
    (NoFaceError("no face found in a.jpg"), "targets", "no_face", 4),
    (LandmarkFileError("landmark file a.npy: every point is outside the photo"), "targets", "targets", 3),
    (ModelError("cannot load model m.npz"), "fit", "fit", 5),
    (NonFiniteFitError("the loss became NaN/inf at iteration 3"), "fit", "nan", 6),
    (NonFiniteFitError("whatever the words"), "fit", "nan", 6),  # the type decides, not the text
    (FitError("the loss became NaN at iteration 3"), "fit", "fit", 6),  # ... in both directions
    (OSError(errno.ENOSPC, "No space left on device"), "write", "enospc", 1),
    (OSError(errno.EACCES, "Permission denied"), "write", "write", 1),
    (MemoryError(), "fit", "memory", 1),
    (RuntimeError("CUDA out of memory"), "fit", "fit", 1),
    (PrdlfitError("something of ours"), "targets", "targets", 1),
])
def test_classification_is_by_type(err, stage, kind, code):
    f = classify(err, stage)
    assert (f.kind, f.exit_code) == (kind, code)
    assert f.reason.startswith(f"{kind}: ") and "\n" not in f.reason


def test_the_table_rows_and_their_exit_codes():
    rows = {row.type: (row.kind, row.exit_code) for row in FAILURE_TABLE}
    assert rows == {ImageReadError: ("read", 3), NoFaceError: ("no_face", 4), NonFiniteFitError: ("nan", 6),
                    DiskFullError: ("enospc", 1), MemoryError: ("memory", 1)}
    # subclasses come before their bases, so the first match is the most specific row
    for i, row in enumerate(FAILURE_TABLE):
        assert not any(issubclass(row.type, earlier.type) for earlier in FAILURE_TABLE[:i])
    assert failure_type(ValueError("x")) is None
    full = classify(OSError(errno.ENOSPC, "No space left on device"), "write")
    assert isinstance(full.error, DiskFullError) and full.message == "No space left on device"
    assert classify(RuntimeError("boom"), "fit").message == "RuntimeError: boom"
    with pytest.raises(ValueError, match="stage must be one of"):
        classify(RuntimeError("x"), "elsewhere")


# ------------------------------------------------------------------ `prdlfit fit` uses the shared fallback
class _StubFitter:
    """Fails any batch of several faces; a face whose source says ``nan`` comes back failed."""

    def __init__(self, result):
        self.result, self.calls = result, []

    def fit(self, targets, progress=None):
        self.calls.append([Path(t.source).name for t in targets])
        if len(targets) > 1:
            raise RuntimeError("CUDA out of memory")
        failure = "the loss became NaN/inf at iteration 3" if "nan" in targets[0].source else None
        return [replace(self.result, targets=targets[0], failure=failure)]


def test_fit_command_refits_alone_and_classifies_by_type(tmp_path):
    from conftest import fake_photo, make_fake_fit, make_fake_model

    from fitter.cli import FaceJob, RunTally, fit_batch
    from fitter.settings import load_settings

    model = make_fake_model()
    result = make_fake_fit(model)
    jobs = [FaceJob(Path(name), replace(result.targets, source=name), fake_photo(), tmp_path / Path(name).stem)
            for name in ("a.png", "has_nan.png")]
    stub, tally = _StubFitter(result), RunTally()
    fit_batch(stub, jobs, load_settings(), True, model, tally)
    assert stub.calls == [["a.png", "has_nan.png"], ["a.png"], ["has_nan.png"]]
    assert tally.fitted == {"a.png": 1} and (tmp_path / "a" / "fit.json").is_file()
    assert tally.failed == {"has_nan.png": (6, "fit failed: the loss became NaN/inf at iteration 3")}
    assert tally.exit_code() == 1 and not (tmp_path / "has_nan").exists()


# ------------------------------------------------------------------ the same fit.json from fit and batch
TIMING = {"seconds"}


def _summary(folder: Path) -> dict:
    data = json.loads((folder / "fit.json").read_text())
    return {k: v for k, v in data.items() if k not in TIMING}


def test_fit_and_batch_write_the_same_fit(shared, fake_model_file, tmp_path):
    pytest.importorskip("mediapipe")
    photo = shared / "images" / "3ddfa-v3-examples" / "1.jpg"
    if not photo.is_file():
        pytest.skip(f"{photo} not found")
    inp = tmp_path / "in"
    inp.mkdir()
    image = inp / "face.jpg"
    image.write_bytes(photo.read_bytes())
    image = image.resolve()  # batch records absolute paths
    cfg = tmp_path / "c.yaml"
    cfg.write_text("targets:\n  margin: 0.35\nfit:\n  anchors: [16, 16]\n")
    common = ["--model", str(fake_model_file), "--device", "cpu", "--iters", "3", "--rigid-iters", "2",
              "--config", str(cfg), "--seed", "1"]
    runner = CliRunner()
    from fitter.cli import main

    r = runner.invoke(main, ["fit", str(image), "-o", str(tmp_path / "fit"), "-q", *common])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["batch", str(inp), "-o", str(tmp_path / "batch"), "--workers", "0", "--no-progress",
                             "--no-report", "--no-parquet", *common])
    assert r.exit_code == 0, r.output
    a, b = _summary(tmp_path / "fit" / "face"), _summary(tmp_path / "batch" / "face")
    assert b["target_config"] is not None and b["target_config"]["margin"] == 0.35
    assert b["config"]["anchors"] == [16, 16] and b["config"]["iters"] == 3 and b["config"]["device"] == "cpu"
    assert a == b
    with np.load(tmp_path / "fit" / "face" / "fit.npz") as fa, np.load(tmp_path / "batch" / "face" / "fit.npz") as fb:
        assert sorted(fa.files) == sorted(fb.files)
        for key in fa.files:
            assert np.array_equal(fa[key], fb[key]), key
    names = {p.name for p in (tmp_path / "fit" / "face").iterdir()}
    assert names == {p.name for p in (tmp_path / "batch" / "face").iterdir()}
