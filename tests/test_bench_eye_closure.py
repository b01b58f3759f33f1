"""scripts/bench_eye_closure.py end to end on two faces (render -> front end -> fit -> report)."""
import pytest
from conftest import load_script

pytest.importorskip("mediapipe")


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_eye_closure")


def test_two_faces_are_rendered_fitted_and_reported(bench, tmp_path):
    out = tmp_path / "eyes.md"
    assert bench.main(["--seed0", "200", "--cases", "2", "--iters", "5", "--rigid-iters", "5", "--out", str(out)]) == 0
    text = out.read_text()
    assert "2 ICT renders (seeds 200..201), 2 fitted" in text
    assert "| 200 asymmetric" in text and "| 201 eyes_closed" in text
    # asymmetric closes the left eye only, eyes_closed both: 3 closed eyes, 1 open one
    assert "(3) |" in text and "(1) |" in text
