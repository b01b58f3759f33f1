"""The benchmark scripts' shared pieces: scripts/fit_arguments.py (the --fit-option / --loss arguments)
and scripts/front_end_run.py (a render through the front end)."""
import argparse

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def fa():
    return load_script("fit_arguments")


def _parser(fa):
    ap = argparse.ArgumentParser(prog="bench")
    fa.add_fit_arguments(ap, "every setting")
    return ap


def test_values_are_parsed_and_described(fa):
    ap = _parser(fa)
    args = ap.parse_args(["--fit-option", "rel_tol=0.004", "--fit-option", 'exp_sparse_scale={"eyeLookUp_L": 5}',
                          "--loss", "shading=0", "--loss", "prdl=1.6e-3"])
    options, losses = fa.read_fit_arguments(ap, args)
    assert options == {"rel_tol": 0.004, "exp_sparse_scale": {"eyeLookUp_L": 5.0}}
    assert losses == {"shading": 0.0, "prdl": 1.6e-3}
    assert fa.describe_fit_arguments(options, losses) == (
        " rel_tol=0.004. exp_sparse_scale={'eyeLookUp_L': 5.0}. --loss shading=0. --loss prdl=0.0016.")
    assert fa.read_fit_arguments(ap, ap.parse_args([])) == ({}, {})


@pytest.mark.parametrize("argv,message", [(["--loss", "shade=1"], "shade"), (["--loss", "prdl"], "prdl"),
                                          (["--fit-option", "no_such_field=1"], "no_such_field")])
def test_a_bad_value_ends_with_one_line_and_exit_2(fa, capsys, argv, message):
    ap = _parser(fa)
    with pytest.raises(SystemExit) as stop:
        fa.read_fit_arguments(ap, ap.parse_args(argv))
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("bench: error:") and message in err[-1] and "Traceback" not in "".join(err)


def test_the_eye_closure_benchmark_refuses_a_bad_loss_in_one_line(capsys):
    bench = load_script("bench_eye_closure")
    with pytest.raises(SystemExit) as stop:
        bench.parse_args(["--loss", "blink=2"])
    assert stop.value.code == 2 and "blink" in capsys.readouterr().err


def test_a_render_without_a_face_is_a_failure_with_its_reason(tmp_path):
    pytest.importorskip("mediapipe")
    import numpy as np

    run = load_script("front_end_run")
    path = tmp_path / "blank.png"
    targets, why = run.through_front_end(np.full((256, 256, 3), 128, np.uint8), str(path))
    assert targets is None and "no face found" in why and path.exists()


def test_the_calibration_scripts_loss_reader_refuses_a_bad_weight_in_one_line(fa, capsys):
    ap = argparse.ArgumentParser(prog="calibrate")
    assert fa.read_losses(ap, ["mesh_lmk=0", "lmk=6.4e-3"]) == {"mesh_lmk": 0.0, "lmk": 6.4e-3}
    with pytest.raises(SystemExit) as stop:
        fa.read_losses(ap, ["lmk=heavy"])
    assert stop.value.code == 2 and capsys.readouterr().err.strip().splitlines()[-1].startswith("calibrate: error:")
