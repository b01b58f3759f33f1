"""scripts/bench_eye_closure.py end to end on two faces (render -> front end -> fit -> report)."""
import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("mediapipe")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_eye_closure.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("bench_eye_closure", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_faces_are_rendered_fitted_and_reported(bench, tmp_path):
    out = tmp_path / "eyes.md"
    assert bench.main(["--seed0", "200", "--cases", "2", "--iters", "5", "--rigid-iters", "5", "--out", str(out)]) == 0
    text = out.read_text()
    assert "2 ICT renders (seeds 200..201), 2 fitted" in text
    assert "| 200 asymmetric" in text and "| 201 eyes_closed" in text
    # asymmetric closes the left eye only, eyes_closed both: 3 closed eyes, 1 open one
    assert "(3) |" in text and "(1) |" in text
