"""scripts/bench_cross_model.py: its named case sets (the rendering and scoring need the SFM model and
run in the benchmark itself)."""
import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_cross_model.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("bench_cross_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_named_splits_hold_ten_identities_each_and_do_not_overlap(bench):
    choice = bench.parse_args(["--split", "choice"])
    report = bench.parse_args(["--split", "report"])
    assert (choice.seed0, choice.cases) == (0, 70)
    assert (report.seed0, report.cases) == (10, 70)
    ids = {s: set(range(a.seed0, a.seed0 + a.cases // bench.EXPRESSIONS_PER_IDENTITY))
           for s, a in (("choice", choice), ("report", report))}
    assert not ids["choice"] & ids["report"]


def test_without_a_split_the_old_defaults_hold(bench):
    args = bench.parse_args([])
    assert (args.seed0, args.cases) == (0, 14)
    args = bench.parse_args(["--seed0", "10", "--cases", "21"])
    assert (args.seed0, args.cases) == (10, 21)


def test_a_split_with_its_own_seed_is_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--split", "report", "--seed0", "3"])
    assert "--split sets --seed0 and --cases" in capsys.readouterr().err
