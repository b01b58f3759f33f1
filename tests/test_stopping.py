"""The early-stopping rules of fitter.fit.stopping on hand-made objective sequences."""
from __future__ import annotations

import math

import pytest
import torch

from fitter.config import FitConfig
from fitter.fit.stopping import EarlyStop


def _first_stop(values, rule="progress", rel_tol=1e-3, patience=10, refresh_every=0):
    """Iteration (0-based) at which the rule fires on one face's objective sequence, or None."""
    stop = EarlyStop(1, torch.device("cpu"), rule, rel_tol, patience)
    for k, v in enumerate(values):
        refreshed = bool(refresh_every) and k % refresh_every == 0
        if bool(stop.update(torch.tensor([float(v)]), refreshed)[0]):
            return k
    return None


def _wobble(n, level=1.0, amplitude=4e-3):
    """A flat objective with Adam's step-to-step wobble (±amplitude relative)."""
    return [level * (1 + amplitude * (1 if k % 2 else -1)) for k in range(n)]


def test_progress_stops_a_wobbling_plateau_that_calm_does_not():
    values = [2.0 - 0.1 * k for k in range(10)] + _wobble(100)
    assert _first_stop(values, "calm") is None  # each step changes by 0.8 %: never calm
    k = _first_stop(values, "progress")
    assert k is not None and 10 < k <= 22  # about patience iterations after the plateau starts


def test_progress_does_not_stop_a_slow_steady_descent_that_calm_stops():
    values = [math.exp(-0.002 * k) for k in range(200)]  # 0.2 % per iteration, never flat
    assert _first_stop(values, "calm", rel_tol=3e-3) == 10  # each step is below rel_tol
    assert _first_stop(values, "progress", rel_tol=1e-3) is None


def test_progress_waits_while_the_objective_is_far_above_its_best():
    # a stage whose first step overshoots from a good start: no progress on the best for a while
    values = [1.0] + [1.5 - 0.05 * k for k in range(20)] + [0.5] * 30
    k = _first_stop(values, "progress", patience=3)
    assert k is not None and k >= 11  # not at 3, while the objective is still above 1.0


def test_non_finite_values_never_fire_and_calm_ignores_refreshes():
    assert _first_stop([float("nan")] * 50) is None
    assert _first_stop([1.0] * 50, "calm", patience=5) == 5
    # the level change at every refresh (a new function) neither breaks nor counts towards the streak
    jumps = [1.0 + 0.05 * ((k // 4) % 2) for k in range(50)]
    assert _first_stop(jumps, "calm", patience=5, refresh_every=4) is not None
    assert _first_stop(jumps, "calm", patience=5) is None


def test_rel_tol_zero_never_stops_and_unknown_rules_are_refused():
    assert _first_stop([1.0] * 100, "progress", rel_tol=0.0) is None
    assert _first_stop([1.0] * 100, "calm", rel_tol=0.0) is None
    with pytest.raises(ValueError, match="stop rule"):
        EarlyStop(1, torch.device("cpu"), "never", 1e-3, 10)
    with pytest.raises(ValueError, match="stop_rule"):
        FitConfig(stop_rule="never")
    assert FitConfig().stop_rule == "progress"


def test_each_face_of_a_batch_has_its_own_state():
    stop = EarlyStop(2, torch.device("cpu"), "progress", 1e-3, 3)
    fired = []
    for k in range(20):
        total = torch.tensor([1.0, 2.0 - 0.1 * k])  # flat; descending
        fired.append(stop.update(total).tolist())
    assert fired[3] == [True, False] and not any(f[1] for f in fired)
