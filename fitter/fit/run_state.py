"""Book-keeping of a batched run: iteration count, per-face history, early stopping, NaN handling,
freezing and the best-iterate restore.

Per face and stage: the objective ``E_k`` logged at iteration k was evaluated at the parameters
before step k. The face converges when the stage's stopping rule fires
(:mod:`fitter.fit.stopping`); it is then frozen (later steps of the batch are undone for it). A face whose
objective turns NaN/inf goes back to its last finite parameters, is frozen and marked failed. At the
end of a stage every face is left at its lowest logged objective (a late Adam wobble or an L-BFGS
step into a worse region is not kept).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional

import numpy as np
import torch
from torch import Tensor

from fitter.fit.forward import Visibility
from fitter.fit.stopping import EarlyStop
from fitter.objective import weighted_terms
from fitter.result import LossHistory


class RunState:
    """State of B faces across the stages of one fit (see the module docstring)."""

    def __init__(self, B: int, device: torch.device):
        self.B = B
        self.iteration = 0
        self.visible: Optional[Visibility] = None
        self.frozen = torch.zeros(B, dtype=torch.bool, device=device)
        self.failed = torch.zeros(B, dtype=torch.bool, device=device)
        self.stop: Optional[EarlyStop] = None  # the current stage's stopping rule and its state
        self.histories = [LossHistory() for _ in range(B)]
        self.iterations = [0] * B
        self.converged_at: List[Optional[int]] = [None] * B
        self.failure: List[Optional[str]] = [None] * B
        self.snapshots: List[list] = [[] for _ in range(B)]
        self._frozen_values: List[Tensor] = []
        self._last_good: List[Tensor] = []

    @property
    def prev(self) -> Optional[Tensor]:
        """[B] the last finite objective of each face in this stage (None before its first
        iteration): the stopping rule's own record (:attr:`EarlyStop.prev`)."""
        return None if self.stop is None else self.stop.prev

    def begin_stage(self, tensors: List[Tensor], stop: EarlyStop) -> None:
        """Start a stage over ``tensors`` whose faces converge by ``stop`` (fresh for the stage)."""
        self.stop = stop
        self.frozen = self.failed.clone()
        self.converged_at = [None] * self.B
        self._frozen_values = [t.detach().clone() for t in tensors]
        self._last_good = [t.detach().clone() for t in tensors]
        self.best = torch.full((self.B,), float("inf"), device=self.frozen.device)
        self._best_values = [t.detach().clone() for t in tensors]

    def end_stage(self, tensors: List[Tensor]) -> None:
        """Leave every face at the parameters of its lowest logged objective in this stage."""
        has = torch.isfinite(self.best)
        for t, best in zip(tensors, self._best_values):
            if t.dim() and t.shape[0] == self.B and bool(has.any()):
                t.data[has] = best[has]

    def after_step(self, tensors: List[Tensor]) -> None:
        """Undo the step for frozen faces (converged or failed)."""
        for t, keep in zip(tensors, self._frozen_values):
            if t.dim() and t.shape[0] == self.B and bool(self.frozen.any()):
                t.data[self.frozen] = keep[self.frozen]

    def log(self, stage: str, values: Mapping[str, Tensor], weights: Mapping[str, float]) -> None:
        """Count an iteration and append each live face's weighted terms to its history.

        ``iteration`` counts the batch's steps; each face's history and ``iterations`` count the
        face's own (a face frozen while others go on, say at the end of its rigid stage, is not
        counted meanwhile), so that a face numbers its iterations as it would alone."""
        self.iteration += 1
        cols = weighted_terms(values, weights)
        keys = list(cols)
        table = torch.stack([cols[k] for k in keys], -1).cpu().tolist()
        frozen = self.frozen.tolist()
        for b in range(self.B):
            if frozen[b]:
                continue
            self.iterations[b] += 1
            row: Dict[str, object] = {"iteration": self.iterations[b], "stage": stage}
            row.update(zip(keys, table[b]))
            self.histories[b].rows.append(row)  # type: ignore[arg-type]

    def check(self, total: Tensor, tensors: List[Tensor], refreshed: bool = False) -> None:
        """Early stopping per face (the stage's rule, :meth:`begin_stage`), NaN handling,
        best-so-far and the freeze bookkeeping.

        ``total`` [B] was evaluated at the parameters before this step, which ``_last_good`` holds.
        ``refreshed``: this iteration's visibility and point sets were recomputed (the rule may
        treat the jump every ``visibility_every`` iterations apart).
        """
        finite = torch.isfinite(total)
        better = finite & ~self.frozen & (total < self.best)
        if bool(better.any()):
            self.best = torch.where(better, total, self.best)
            for best, good in zip(self._best_values, self._last_good):
                if best.dim() and best.shape[0] == self.B:
                    best[better] = good[better]
        bad = ~finite & ~self.frozen
        if bool(bad.any()):
            for b in torch.nonzero(bad).flatten().tolist():
                self.failure[b] = f"the loss became NaN/inf at iteration {self.iteration}"
            self.failed |= bad
            for t, good in zip(tensors, self._last_good):
                if t.dim() and t.shape[0] == self.B:
                    t.data[bad] = good[bad]
            self._freeze(bad, tensors)
        newly = self.stop.update(total, refreshed) & ~self.frozen
        if bool(newly.any()):
            for b in torch.nonzero(newly).flatten().tolist():
                self.converged_at[b] = self.iteration
            self._freeze(newly, tensors)
        ok = finite & ~self.frozen
        for t, good in zip(tensors, self._last_good):
            if t.dim() and t.shape[0] == self.B:
                good[ok] = t.detach()[ok]

    def _freeze(self, mask: Tensor, tensors: List[Tensor]) -> None:
        for t, keep in zip(tensors, self._frozen_values):
            if t.dim() and t.shape[0] == self.B:
                keep[mask] = t.detach()[mask]
        self.frozen |= mask

    def snapshot(self, points_img: Tensor) -> None:
        """Keep each face's projected points [B, V, 2] at this iteration, labelled with the face's
        own iteration count; once per count (a face frozen since its last snapshot is not kept again)."""
        pts = points_img.detach().cpu().numpy().astype(np.float32)
        for b in range(self.B):
            if not self.snapshots[b] or self.snapshots[b][-1][0] != self.iterations[b]:
                self.snapshots[b].append((self.iterations[b], pts[b]))
