"""scripts/bench_cross_model.py: its named case sets (the rendering and scoring need the SFM model and
run in the benchmark itself)."""
import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_cross_model")


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


def test_the_light_is_plain_unless_asked(bench, capsys):
    assert bench.parse_args([]).light == "plain"
    assert bench.parse_args(["--split", "choice", "--light", "harder"]).light == "harder"
    with pytest.raises(SystemExit):
        bench.parse_args(["--light", "studio"])
    assert "invalid choice" in capsys.readouterr().err


def test_each_photo_finds_its_own_persons_neutral_face(bench):
    import numpy as np

    def case(name, expression):
        return bench.Case(name, expression, 0.0, 0.0, np.zeros((1, 3)), np.zeros((1, 3)), "")

    cases = [case("id3-anger", "anger"), case("id3-neutral", "neutral"), case("id12-neutral", "neutral"),
             case("id12-fear", "fear"), case("id7-fear", "fear")]
    assert bench.neutral_of(cases) == [1, 1, 2, 2, None]  # id7's neutral face is not in the run
