"""Out of the box: ``prdlfit demo``, quiet library logs (``-v`` shows them), the protobuf/mediapipe
check, and ``curves --animate`` writing only what it is asked for."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fitter.cli import DEMO_PHOTO, main
from fitter.targets.mediapipe_env import protobuf_problem
from morphable_models import ict

REPO = Path(__file__).resolve().parents[1]
#: the native log lines that mediapipe 0.10.14 prints on a fit (unless silenced)
NOISE = ("inference_feedback_manager", "TensorFlow Lite XNNPACK delegate", "absl::InitializeLog")
MEDIAPIPE_REQUIRES = ["absl-py", "attrs>=19.1.0", "protobuf <5,>=4.25.3", "sounddevice>=0.4.4"]


@pytest.fixture
def embedded_only(tmp_path, monkeypatch):
    """An empty model cache and no source folder: the default model is the embedded one."""
    monkeypatch.setenv("PRDLFIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(ict.SOURCE_ENV, raising=False)
    return tmp_path


def test_the_demo_photo_ships_with_its_credit():
    assert DEMO_PHOTO.is_file() and DEMO_PHOTO.stat().st_size < 200_000
    credit = DEMO_PHOTO.with_suffix(".txt").read_text("utf-8")
    assert "public domain" in credit and "NASA" in credit


@pytest.mark.slow
def test_demo_writes_every_output_and_says_where_to_look(embedded_only):
    out = embedded_only / "demo"
    r = CliRunner().invoke(main, ["demo", "-o", str(out), "--iters", "5", "--rigid-iters", "5"])
    assert r.exit_code == 0, r.output
    res = out / "astronaut"
    for name in ("fit.json", "fit.npz", "mesh.obj", "mesh.ply", "overlay.png", "parts.png", "curves.csv",
                 "curves.png", "landmarks2d.npy", "landmarks3d.npy", "snapshots.npz"):
        assert (res / name).is_file(), name
    assert json.loads((res / "fit.json").read_text())["iterations"] == 10
    assert f"prdlfit view {res}" in r.stdout and "overlay.png" in r.stdout and "--animate" in r.stdout
    assert not (embedded_only / "cache").exists() or not any((embedded_only / "cache").rglob("*.npz"))


def _fit(args, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("GLOG_minloglevel", "TF_CPP_MIN_LOG_LEVEL",
                                                             "PRDLFIT_VERBOSE", ict.SOURCE_ENV)}
    env.update(PYTHONPATH=str(REPO), PRDLFIT_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "fitter.cli", *args, "fit", str(DEMO_PHOTO), "-o", str(tmp_path / "out"),
           "--iters", "2", "--rigid-iters", "2", "--no-overlay"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_fit_keeps_library_logs_off_stderr_unless_verbose(tmp_path):
    quiet = _fit([], tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert not [n for n in NOISE if n in quiet.stderr], quiet.stderr
    # not a terminal: no progress bar, one line per image, one summary line
    lines = quiet.stderr.splitlines()
    assert [ln for ln in lines if ln.startswith("ok: ")] and len(lines) == 2, lines
    loud = _fit(["-v"], tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert [n for n in NOISE if n in loud.stderr], loud.stderr


@pytest.mark.parametrize("installed, expected", [
    ("4.25.9", None), ("4.25.3", None),
    ("7.34.0", 'pip install "protobuf<5,>=4.25.3"'), ("5.26.1", "mediapipe 0.10.14 needs protobuf<5,>=4.25.3"),
    ("4.21.12", "protobuf 4.21.12 is installed"), (None, "which is not installed"),
    ("not-a-version", None),
])
def test_protobuf_problem(installed, expected):
    got = protobuf_problem(installed, "0.10.14", MEDIAPIPE_REQUIRES)
    if expected is None:
        assert got is None
    else:
        assert got is not None and expected in got and "\n" not in got


def test_protobuf_problem_without_mediapipe_or_a_pin():
    assert protobuf_problem("7.34.0", None, MEDIAPIPE_REQUIRES) is None
    assert protobuf_problem("7.34.0", "0.10.99", ["absl-py", "protobuf"]) is None


def test_a_bad_protobuf_stops_fit_with_one_line(monkeypatch, tmp_path):
    from fitter.targets import mediapipe_env

    monkeypatch.setattr(mediapipe_env, "_version", lambda d: {"mediapipe": "0.10.14", "protobuf": "7.34.0"}[d])
    monkeypatch.setattr(mediapipe_env.metadata, "requires", lambda d: MEDIAPIPE_REQUIRES)
    r = CliRunner().invoke(main, ["fit", str(DEMO_PHOTO), "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and not (tmp_path / "o").exists()
    assert r.stderr.startswith("error: protobuf 7.34.0 is installed") and len(r.stderr.splitlines()) == 1


def test_curves_animate_writes_only_the_animation(tmp_path, monkeypatch):
    from conftest import fake_photo, make_fake_fit, make_fake_model

    from fitter.outputs.writer import write_fit_outputs

    model = make_fake_model()
    res = tmp_path / "res" / "photo"
    write_fit_outputs(make_fake_fit(model), model, res, original_image=fake_photo())
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    r = CliRunner().invoke(main, ["curves", str(res), "--animate", "anim.gif"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in work.iterdir()) == ["anim.gif"]
    r = CliRunner().invoke(main, ["curves", str(res), "--animate", "b.gif", "-o", "fig.png"])
    assert r.exit_code == 0 and sorted(p.name for p in work.iterdir()) == ["anim.gif", "b.gif", "fig.png"]
