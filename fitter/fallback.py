"""Fit faces together, and confine every failure to its face: the one fallback of ``prdlfit fit``
and ``prdlfit batch``.

The faces of a batch are fitted in one vectorized optimization. If that raises, each face is
fitted alone; a face whose result is unusable (``FitResult.failure``, or NaN/inf numbers) is
refitted alone too. A face that fails alone becomes a failed :class:`FitOutcome` with its
:class:`fitter.failures.Failure`; the other faces keep their results.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np

from fitter.errors import FitError, NonFiniteFitError
from fitter.failures import Failure, classify
from fitter.result import FitResult
from fitter.targets.types import Targets

#: fits several faces in one optimization, one result per face in order
FitFn = Callable[[Sequence[Targets]], List[FitResult]]


@dataclass
class FitOutcome:
    """The fit of one face: a result, or its failure."""

    result: Optional[FitResult]
    failure: Optional[Failure] = None
    seconds: float = 0.0
    batch_size: int = 1

    @property
    def kind(self) -> str:
        """The failure kind ('' when fitted)."""
        return self.failure.kind if self.failure is not None else ""

    @property
    def reason(self) -> str:
        """``<kind>: <message>`` ('' when fitted)."""
        return self.failure.reason if self.failure is not None else ""


def result_failure(result: FitResult) -> Optional[NonFiniteFitError]:
    """Why a returned fit is unusable, else None.

    :class:`fitter.optimize.Fitter` sets ``result.failure`` only when a face's loss stops being
    finite; non-finite numbers in the result's arrays are the same failure.
    """
    failure = getattr(result, "failure", None)
    if failure:
        return NonFiniteFitError(str(failure))
    total = result.final_losses.get("total", 0.0) if result.final_losses else 0.0
    arrays = (result.vertices_image, result.id_coeffs, result.exp_coeffs, result.landmarks2d)
    if not math.isfinite(float(total)) or not all(np.all(np.isfinite(np.asarray(a, np.float64))) for a in arrays):
        return NonFiniteFitError("the fit produced NaN/inf values")
    return None


def fit_with_fallback(fit: FitFn, targets: Sequence[Targets]) -> List[FitOutcome]:
    """Fit ``targets`` together; if that raises, fit them one by one; refit a failed face alone.

    Returns one outcome per face, in order.
    """
    targets = list(targets)
    if not targets:
        return []
    t0 = time.perf_counter()
    try:
        results = list(fit(targets))
        if len(results) != len(targets):
            raise FitError(f"the fitter returned {len(results)} results for {len(targets)} faces")
    except Exception as err:  # noqa: BLE001 - any fitter error is confined to its faces
        if len(targets) == 1:
            return [FitOutcome(None, classify(err, "fit"), time.perf_counter() - t0, 1)]
        return [fit_with_fallback(fit, [t])[0] for t in targets]
    seconds = time.perf_counter() - t0
    out: List[FitOutcome] = []
    for t, r in zip(targets, results):
        bad = result_failure(r)
        if bad is None:
            out.append(FitOutcome(r, seconds=seconds, batch_size=len(targets)))
        elif len(targets) > 1:
            out.append(fit_with_fallback(fit, [t])[0])
        else:
            out.append(FitOutcome(None, classify(bad, "fit"), seconds, 1))
    return out


__all__ = ["FitFn", "FitOutcome", "result_failure", "fit_with_fallback"]
