"""The early-stopping rule of fitter.fit.stopping on hand-made objective sequences."""
from __future__ import annotations

import torch

from fitter.fit.stopping import EarlyStop


def _first_stop(values, rel_tol=1e-3, patience=10, refresh_every=0):
    """Iteration (0-based) at which the rule fires on one face's objective sequence, or None."""
    stop = EarlyStop(1, torch.device("cpu"), rel_tol, patience)
    for k, v in enumerate(values):
        refreshed = bool(refresh_every) and k % refresh_every == 0
        if bool(stop.update(torch.tensor([float(v)]), refreshed)[0]):
            return k
    return None


def test_a_streak_of_small_changes_stops_and_a_larger_change_restarts_it():
    assert _first_stop([1.0] * 50, patience=5) == 5
    values = [1.0] * 4 + [1.01] + [1.01 * (1 - 5e-4) ** k for k in range(1, 40)]
    assert _first_stop(values, patience=5) == 9  # the 1 % step at 4 broke the streak
    assert _first_stop([1.0 - 2e-3 * k for k in range(100)]) is None  # 0.2 % steps: never calm at 1e-3


def test_refreshes_neither_count_nor_break_the_streak():
    # the level change at every refresh (a new function) is not a step of the fit
    jumps = [1.0 + 0.05 * ((k // 4) % 2) for k in range(50)]
    assert _first_stop(jumps, patience=5, refresh_every=4) is not None
    assert _first_stop(jumps, patience=5) is None


def test_non_finite_values_and_rel_tol_zero_never_stop():
    assert _first_stop([float("nan")] * 50) is None
    assert _first_stop([1.0] * 100, rel_tol=0.0) is None


def test_each_face_of_a_batch_has_its_own_streak():
    stop = EarlyStop(2, torch.device("cpu"), 1e-3, 3)
    fired = [stop.update(torch.tensor([1.0, 2.0 - 0.1 * k])).tolist() for k in range(20)]
    assert fired[3] == [True, False] and not any(f[1] for f in fired)
