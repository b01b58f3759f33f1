"""The live faces of a batch: converged and failed faces leave the compute.

The faces of a batch converge at different iterations, and a frozen face (converged or failed,
:class:`~fitter.fit.run_state.RunState`) has every later step undone, so evaluating it is wasted
work: a batch used to run at full size until its last face stopped. Once some faces are frozen, each
evaluation runs on the live ones only: their parameters are selected with ``index_select`` (the
gradient flows back to the selected rows of the full tensors; the frozen rows get 0, as the live
mask gave them before), their targets, camera and visibility are the selected rows, and the
per-face outputs are spread back to the batch ([B], frozen rows filled). Each live face's
arithmetic is the same as in the full batch; only the batch it is computed in is smaller.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from fitter.fit.forward import Colour, ForwardPass, Visibility
from fitter.fit.params import FaceParams
from fitter.geometry.cameras import FittingCamera
from fitter.objective import TargetBatch


def spread(part: Tensor, index: Tensor, batch: int, fill: Optional[Tensor] = None) -> Tensor:
    """[b, ...] rows of the faces ``index`` -> [B, ...]; the other rows from ``fill`` ([B, ...]) or NaN."""
    out = fill.clone() if fill is not None else part.new_full((batch,) + tuple(part.shape[1:]), float("nan"))
    out[index] = part.to(out.dtype)
    return out


class LiveBatch:
    """A batch's targets and camera, and their live-face subsets (made once per set of live faces)."""

    def __init__(self, tb: TargetBatch, camera: FittingCamera):
        self.tb, self.camera, self.batch = tb, camera, tb.batch_size
        self._key: Optional[Tuple[bool, ...]] = None
        self._subset: Optional[Tuple[Tensor, TargetBatch, FittingCamera]] = None

    def subset(self, frozen: Tensor) -> Optional[Tuple[Tensor, TargetBatch, FittingCamera]]:
        """(index [b], targets, camera) of the faces not ``frozen`` [B]; None when none is frozen."""
        key = tuple(bool(f) for f in frozen.tolist())
        if not any(key):
            return None
        if key != self._key:
            index = torch.nonzero(~frozen).flatten()
            self._key, self._subset = key, (index, self.tb.select(index), self.camera.select(index))
        return self._subset

    def evaluate(self, forward: ForwardPass, params: FaceParams, terms, colour: Optional[Colour],
                 visible: Optional[Visibility], refresh: bool, point_sets: bool, frozen: Tensor,
                 fill: Optional[Tensor]) -> Tuple[Tensor, Tensor, Dict[str, Tensor], Optional[Visibility]]:
        """One evaluation of the live faces.

        Returns (the live faces' objectives [b] (to sum and backpropagate),
        the objective of every face [B] (frozen rows from ``fill`` [B] or NaN), the term values
        [B, ...] (frozen rows NaN), the visibility of the batch [B] after this evaluation).
        """
        sub = self.subset(frozen)
        if sub is None:
            ev = forward(params, self.tb, self.camera, terms, colour, visible, refresh, point_sets=point_sets)
            return ev.total, ev.total, ev.values, ev.visibility
        index, tb, camera = sub
        col = tuple(c.index_select(0, index) for c in colour) if colour else None
        ev = forward(params.select(index), tb, camera, terms, col, visible.select(index) if visible else None,
                     refresh, point_sets=point_sets)
        total = spread(ev.total.detach(), index, self.batch, fill)
        values = {k: spread(v.detach(), index, self.batch) for k, v in ev.values.items()}
        seen = (visible or Visibility()).merged(index, ev.visibility, self.batch)
        return ev.total, total, values, seen
