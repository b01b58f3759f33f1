"""Early stopping of one stage, per face: the rules that say when a face's fit has converged.

The objective ``E_k`` is the one logged at iteration k of the stage (evaluated before step k).

* ``calm`` (until session 15): the face converges when ``|E_{k-1} − E_k| / |E_{k-1}| < rel_tol`` for
  ``patience`` iterations in a row; an iteration that refreshed visibility and point sets neither
  counts towards nor breaks the streak (its jump is a change of the function, not a step).
  Adam keeps the objective of a converged fit wobbling by a few 1e-3 per step, so the streak
  often forms only once the cosine decay has shrunk the rate.
* ``progress`` (default): the face converges when the lowest objective so far, ``B_k = min_{j≤k}
  E_j``, improved by less than ``rel_tol`` per iteration over the last ``patience`` iterations and
  the objective is back within that margin of it:

      B_{k−patience} − B_k < rel_tol · patience · |B_k|   and   E_k − B_k ≤ rel_tol · patience · |B_k|.

  A wobble does not improve ``B``, so it neither delays the stop nor hides a slow, steady descent
  (which ``calm`` stops in the middle of once each step is below ``rel_tol``); the second condition
  keeps a stage going while its objective is still far above its best (the first steps of a stage
  overshooting from a good start). Refreshes need no special case: a jump up delays the stop by
  the iterations the objective takes to come back, a jump down is progress.

Both work on a batch [B]; a face with a non-finite objective is the caller's (it fails, not
converges), and frozen faces are masked out by the caller.
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor

from fitter.config import STOP_RULES


class EarlyStop:
    """One stage's stopping state for B faces (see the module docstring).

    Args:
        B: faces. rule: one of :data:`STOP_RULES`. rel_tol: relative change per iteration.
        patience: iterations (the streak of ``calm``, the window of ``progress``).
    """

    def __init__(self, B: int, device: torch.device, rule: str, rel_tol: float, patience: int):
        if rule not in STOP_RULES:
            raise ValueError(f"stop rule must be one of {STOP_RULES}, got {rule!r}")
        self.rule, self.rel_tol, self.patience = rule, rel_tol, patience
        self.prev: Optional[Tensor] = None  # calm: the last finite objective [B]
        self.calm = torch.zeros(B, dtype=torch.long, device=device)
        self.low = torch.full((B,), float("inf"), device=device)  # progress: B_k
        self.lows: List[Tensor] = []  # progress: B_{k-patience} .. B_{k-1}

    def update(self, total: Tensor, refreshed: bool = False) -> Tensor:
        """[B] bool: the faces whose rule fires at this iteration, given its objective ``total`` [B]
        (non-finite entries never fire and leave the face's state as it was)."""
        finite = torch.isfinite(total)
        if self.rule == "calm":
            fired = torch.zeros_like(finite)
            if self.prev is not None and not refreshed:
                rel = (self.prev - total).abs() / self.prev.abs().clamp_min(1e-12)
                calm = finite & (rel < self.rel_tol)
                self.calm = torch.where(calm, self.calm + 1, torch.zeros_like(self.calm))
                fired = self.calm >= self.patience
            self.prev = torch.where(finite, total, self.prev if self.prev is not None else total)
            return fired
        self.low = torch.where(finite & (total < self.low), total, self.low)
        fired = torch.zeros_like(finite)
        if len(self.lows) == self.patience:
            before = self.lows.pop(0)
            margin = self.rel_tol * self.patience * self.low.abs()
            fired = finite & torch.isfinite(before) & (before - self.low < margin) & (total - self.low <= margin)
        self.lows.append(self.low.clone())
        return fired
