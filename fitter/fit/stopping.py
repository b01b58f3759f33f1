"""Early stopping of one stage, per face: the rule that says when a face's fit has converged.

The objective ``E_k`` is the one logged at iteration k of the stage (evaluated before step k). A
face converges when ``|E_{k-1} − E_k| / |E_{k-1}| < rel_tol`` for ``patience`` iterations in a
row; an iteration that refreshed visibility and point sets neither counts towards nor breaks the
streak (its jump is a change of the function, not a step). The fitter (:class:`RunState`) and
``scripts/bench_stopping.py``'s replay of recorded fits both apply it through :class:`EarlyStop`.

Tried in session 15 and not kept: a windowed rule (the best objective so far improved by less than
``rel_tol`` per iteration over ``patience`` iterations), which Adam's step-to-step wobble does not
delay. It cut a third of the iterations but stopped some fits during the first, overshooting
iterations of a stage and cost 2D and synthetic accuracy (BENCHMARKS.md, "Session 15" under "Real
faces").
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


class EarlyStop:
    """One stage's stopping state for B faces (see the module docstring).

    Args:
        B: faces. rel_tol: relative change per iteration. patience: iterations in a row.
    """

    def __init__(self, B: int, device: torch.device, rel_tol: float, patience: int):
        self.rel_tol, self.patience = rel_tol, patience
        self.prev: Optional[Tensor] = None  # the last finite objective [B]
        self.calm = torch.zeros(B, dtype=torch.long, device=device)

    def update(self, total: Tensor, refreshed: bool = False) -> Tensor:
        """[B] bool: the faces whose streak reaches ``patience`` at this iteration, given its
        objective ``total`` [B] (a non-finite entry breaks the streak and is not remembered)."""
        finite = torch.isfinite(total)
        fired = torch.zeros_like(finite)
        if self.prev is not None and not refreshed:
            rel = (self.prev - total).abs() / self.prev.abs().clamp_min(1e-12)
            calm = finite & (rel < self.rel_tol)
            self.calm = torch.where(calm, self.calm + 1, torch.zeros_like(self.calm))
            fired = self.calm >= self.patience
        self.prev = torch.where(finite, total, self.prev if self.prev is not None else total)
        return fired
