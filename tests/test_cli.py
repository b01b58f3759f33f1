"""The ``prdlfit`` command line (click's CliRunner): help, usage errors, bad inputs, exit codes,
``models``, ``view``/``curves`` on written outputs, and one end-to-end ``fit`` on a real photo."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from fitter.cli import EXIT_CODES_HELP, RunTally, fit_settings, main
from fitter.errors import FitError, ImageReadError, NoFaceError
from fitter.settings import Overrides


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


def _one_line_errors(stderr: str):
    return [ln for ln in stderr.splitlines() if ln.startswith("error: ")]


# ------------------------------------------------------------------ help and usage errors
def test_help_lists_commands_and_exit_codes(runner):
    r = runner.invoke(main, ["--help"])
    assert r.exit_code == 0
    for cmd in ("fit", "view", "curves", "export", "models"):
        assert re.search(rf"^\s+{cmd}\s", r.output, re.M), cmd
    r = runner.invoke(main, ["fit", "--help"])
    assert r.exit_code == 0 and "Exit codes:" in r.output and "--loss NAME=W" in r.output
    assert "no face found" in EXIT_CODES_HELP


@pytest.mark.parametrize("args, message", [
    (["fit", "a.jpg"], "Missing option '-o'"),
    (["fit", "-o", "out"], "Missing argument 'IMAGES...'"),
    (["fit", "a.jpg", "-o", "out", "--optimizer", "sgd"], "'sgd' is not one of 'adam', 'lbfgs'"),
    (["fit", "a.jpg", "-o", "out", "--iters", "-3"], "-3 is not in the range x>=0"),
    (["fit", "a.jpg", "-o", "out", "--bogus"], "No such option"),
    (["fit", "a.jpg", "-o", "out", "--loss", "foo=1"], "unknown loss term 'foo'"),
    (["fit", "a.jpg", "-o", "out", "--loss", "prdl"], "expects NAME=WEIGHT"),
    (["fit", "a.jpg", "-o", "out", "--loss", "prdl=-1"], "must be >= 0"),
    (["view", "does/not/exist"], "does not exist"),
    (["view", ".", "--size", "big"], "expected WIDTHxHEIGHT"),
])
def test_usage_errors_exit_2(runner, args, message):
    r = runner.invoke(main, args)
    assert r.exit_code == 2, r.output
    assert message in r.output


def test_unknown_config_key_is_usage_error(runner, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("iters: 5\nbogus_key: 1\n")
    r = runner.invoke(main, ["fit", "a.jpg", "-o", str(tmp_path / "o"), "--config", str(cfg)])
    assert r.exit_code == 2 and "unknown config keys: bogus_key" in r.output


def test_same_stem_twice_is_usage_error(runner, tmp_path):
    r = runner.invoke(main, ["fit", "a/x.jpg", "b/x.png", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "same folder 'x'" in r.output


def test_device_cuda_without_gpu_is_usage_error(runner, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = runner.invoke(main, ["fit", "a.jpg", "-o", str(tmp_path / "o"), "--device", "cuda"])
    assert r.exit_code == 2 and "no CUDA GPU" in r.output


# ------------------------------------------------------------------ options -> configs
def _opts(config=None, **kw):
    """Settings as `prdlfit fit` builds them (fitter.settings replaced cli.build_fit_options)."""
    return fit_settings(config, Overrides(**kw))


def test_config_file_toml_and_yaml_with_command_line_override(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('optimizer = "lbfgs"\niters = 50\nsize = 256\nmodel = "sfm"\n'
                    '[loss_weights]\nchamfer = 0.5\n[targets]\nmargin = 0.4\n')
    o = _opts(toml, iters=7, losses=("prdl=0",))
    assert o.fit.optimizer == "lbfgs" and o.fit.iters == 7  # the command line wins
    assert o.fit.loss_weights["chamfer"] == 0.5 and o.fit.loss_weights["prdl"] == 0.0
    assert o.targets.size == 256 and o.targets.margin == 0.4 and o.run.model == "sfm"
    assert o.fit.device == "cpu" or o.fit.device.startswith("cuda")  # auto resolved
    yaml = tmp_path / "c.yaml"
    yaml.write_text("fit:\n  rigid_iters: 3\n  seed: 9\nbatch_size: 4\n")
    o = _opts(yaml, snapshot_every=5, landmarks=tmp_path)
    assert o.fit.rigid_iters == 3 and o.fit.seed == 9 and o.run.batch_size == 4 and o.fit.snapshot_every == 5
    assert o.targets.landmarks == "file" and o.targets.landmark_file == str(tmp_path)
    assert _opts().run.batch_size == 1  # prdlfit fit's default


def test_config_file_errors(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("iters = [")
    with pytest.raises(ValueError, match="c.toml"):
        _opts(bad)
    ini = tmp_path / "c.ini"
    ini.write_text("x")
    with pytest.raises(ValueError, match="use a .yaml, .yml, .json or .toml"):
        _opts(ini)


# ------------------------------------------------------------------ exit code scheme
def test_exit_code_scheme():
    t = RunTally()
    assert t.exit_code() == 0
    t.fitted["a"] = 1
    t.failed["b"] = (ImageReadError.exit_code, "x")
    assert t.exit_code() == 1  # partial
    t = RunTally(failed={"a": (3, "x"), "b": (3, "y")})
    assert t.exit_code() == ImageReadError.exit_code == 3
    t = RunTally(failed={"a": (NoFaceError.exit_code, "x")})
    assert t.exit_code() == 4
    t = RunTally(failed={"a": (3, "x"), "b": (FitError.exit_code, "y")})
    assert t.exit_code() == 1  # all failed, different reasons


# ------------------------------------------------------------------ bad inputs (fake model: no ICT needed)
def test_missing_and_non_image_files(runner, tmp_path, fake_model_file):
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo")
    missing = tmp_path / "nope.png"
    r = runner.invoke(main, ["fit", str(missing), str(text), "-o", str(tmp_path / "out"),
                             "--model", str(fake_model_file), "--device", "cpu", "-q"])
    assert r.exit_code == ImageReadError.exit_code == 3, r.output
    errors = _one_line_errors(r.stderr)
    assert len(errors) == 2
    assert errors[0].startswith(f"error: {missing}: ") and "no such file" in errors[0]
    assert errors[1].startswith(f"error: {text}: ") and "not an image" in errors[1]
    assert not (tmp_path / "out" / "notes").exists()


def test_unknown_model_exit_5(runner, tmp_path):
    r = runner.invoke(main, ["fit", "a.jpg", "-o", str(tmp_path / "o"), "--model", str(tmp_path / "none.npz"),
                             "--device", "cpu"])
    assert r.exit_code == 5 and _one_line_errors(r.stderr) and "none.npz" in r.stderr


# ------------------------------------------------------------------ models
def test_models_list_and_info(runner, model_cache):
    r = runner.invoke(main, ["models", "list"])
    assert r.exit_code == 0, r.output
    names = [ln.split()[0] for ln in r.output.splitlines()[1:4]]
    assert names == ["ict", "sfm", "bfm"]
    r = runner.invoke(main, ["models", "info", "ict"])
    assert r.exit_code == 0 and "license: MIT" in r.output
    r = runner.invoke(main, ["models", "info", "nosuch"])
    assert r.exit_code == 5 and "unknown model 'nosuch'" in r.stderr


# ------------------------------------------------------------------ view and curves on a written result
def test_view_rejects_folder_without_mesh(runner, tmp_path):
    r = runner.invoke(main, ["view", str(tmp_path), "--offscreen", str(tmp_path / "x.png")])
    assert r.exit_code == 1 and "no mesh.ply here" in r.stderr


def test_curves_compare_and_animate(runner, fake_result, tmp_path):
    fig = tmp_path / "cmp.png"
    gif = tmp_path / "anim.gif"
    r = runner.invoke(main, ["curves", str(fake_result), str(fake_result / "curves.csv"), "-o", str(fig),
                             "--column", "total", "--column", "prdl/nose", "--label", "a", "--label", "b"])
    assert r.exit_code == 0, r.output
    assert fig.stat().st_size > 1000
    r = runner.invoke(main, ["curves", str(fake_result), "-o", str(fig), "--animate", str(gif), "--stride", "2"])
    assert r.exit_code == 0, r.output
    assert "(2 frames)" in r.stderr and gif.read_bytes()[:3] == b"GIF"


def test_curves_errors(runner, fake_result, tmp_path):
    r = runner.invoke(main, ["curves", str(fake_result), str(fake_result), "--animate", str(tmp_path / "a.gif")])
    assert r.exit_code == 2 and "exactly one RESULT" in r.output
    r = runner.invoke(main, ["curves", str(fake_result), "-o", str(tmp_path / "c.png"), "--column", "nope"])
    assert r.exit_code == 2 and "no fit has a column 'nope'" in r.output
    r = runner.invoke(main, ["curves", str(tmp_path)])
    assert r.exit_code == 1 and _one_line_errors(r.stderr)


# ------------------------------------------------------------------ end to end on a real photo
@pytest.mark.slow
def test_fit_end_to_end_on_3ddfa_examples(runner, shared, model_cache, tmp_path):
    import cv2

    photos = sorted((shared / "images" / "3ddfa-v3-examples").glob("*"))
    assert [p.name for p in photos] == ["1.jpg", "2.png"]
    out = tmp_path / "out"
    missing = tmp_path / "missing.jpg"
    r = runner.invoke(main, ["fit", *map(str, photos), str(missing), "-o", str(out), "--rigid-iters", "20",
                             "--iters", "20", "--device", "cpu", "--snapshots", "10"])
    assert r.exit_code == 1, r.output  # one input missing, the two photos fitted
    assert _one_line_errors(r.stderr) == [f"error: {missing}: no such file"]
    expected = {"mesh.obj", "mesh.ply", "fit.npz", "fit.json", "landmarks2d.npy", "landmarks3d.npy", "parts.png",
                "overlay.png", "curves.csv", "curves.png", "snapshots.npz", "neutral.obj", "face.glb",
                "blendshapes.json"}
    for photo in photos:
        d = out / photo.stem
        assert {p.name for p in d.iterdir()} == expected
        H, W = cv2.imread(str(photo)).shape[:2]
        parts = cv2.imread(str(d / "parts.png"), cv2.IMREAD_UNCHANGED)
        assert parts.shape == (H, W) and parts.max() <= 8
        face = (parts > 0).mean()
        assert 0.05 < face < 0.8, face  # a face, not nothing and not everything
        assert set(np.unique(parts).tolist()) == set(range(9))  # frontal photos: every part visible
        lmk = np.load(d / "landmarks2d.npy")
        assert lmk.shape == (68, 2)
        # fitted landmarks land on the fitted face region
        col = np.clip(lmk[:, 0].round().astype(int), 0, W - 1)
        row = np.clip(lmk[:, 1].round().astype(int), 0, H - 1)
        assert (parts[row, col] > 0).mean() > 0.8
        overlay = cv2.imread(str(d / "overlay.png"))
        assert abs(overlay.shape[1] - 3 * W * overlay.shape[0] / H) <= 3  # three panels, photo aspect
        third = overlay.shape[1] // 3
        changed = (np.abs(overlay[:, third:2 * third].astype(int) - overlay[:, :third].astype(int)).sum(-1) > 30).mean()
        assert 0.05 < changed < 0.8, changed
        data = json.loads((d / "fit.json").read_text())
        assert data["model"]["name"] == "ict" and data["iterations"] > 0 and data["image"] == str(photo)
        assert data["config"]["iters"] == 20 and data["target_config"]["size"] == 224
        with open(d / "curves.csv") as f:
            header = f.readline().strip().split(",")
        assert header[:3] == ["iteration", "stage", "total"] and "prdl/skin" in header


# ------------------------------------------------------------------ the console entry point
def test_console_main_ends_fit_at_once_with_clicks_exit_code(tmp_path, monkeypatch, capsys):
    """``prdlfit fit`` ends with os._exit (no interpreter teardown) after flushing, with the exit
    code click gave; other commands exit as usual."""
    import fitter.cli as cli

    exits = []

    def fake_exit(code):
        exits.append(code)
        raise SystemExit(code)  # stands in for the end of the process

    monkeypatch.setattr("os._exit", fake_exit)
    monkeypatch.setattr(cli, "_FAST_EXIT", False)
    monkeypatch.setattr("sys.argv", ["prdlfit", "fit", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "out"), "-q"])
    with pytest.raises(SystemExit):
        cli.console_main()
    assert exits == [3]  # every image failed: missing file
    assert "error: " in capsys.readouterr().err
    monkeypatch.setattr(cli, "_FAST_EXIT", False)
    monkeypatch.setattr("sys.argv", ["prdlfit", "--version"])
    with pytest.raises(SystemExit) as done:
        cli.console_main()
    assert done.value.code == 0 and exits == [3]  # not a fit: the ordinary exit


def test_the_console_command_holds_the_collector_off_for_the_imports_only(tmp_path):
    """``console_main`` disables the cyclic collector while torch and the rest are imported, then
    freezes what the imports made and collects again before the command's own work."""
    code = (
        "import gc, sys\n"
        "import fitter.cli as C\n"
        "seen = []\n"
        "orig = C.collect_after_imports\n"
        "def spy():\n"
        "    seen.append((gc.isenabled(), 'torch' in sys.modules))\n"
        "    orig()\n"
        "    seen.append((gc.isenabled(), gc.get_freeze_count() > 10000))\n"
        "C.collect_after_imports = spy\n"
        "sys.argv = ['prdlfit', 'models', 'list']\n"
        "try:\n"
        "    C.console_main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(seen)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[(False, True), (True, True)]"
