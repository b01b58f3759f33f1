"""Quality flags for pseudo-ground-truth: how well a fit matches its own targets.

Metrics of one fit (computed in the worker, stored in the manifest):

* Part IoU: the fit's parts rasterized in the fitting crop, with the same cleaning the targets got
  (pixels under the target's occlusion mask dropped, skin above the forehead cut dropped), against
  the target part masks; the mean is over the parts present in the target.
* NME: mean distance of the fit's 68 landmarks to the target landmarks (valid ones), divided by the
  target's outer-eye-corner distance (iBUG 36-45).
* convergence: the fit stopped on its relative-change criterion, not on the iteration cap.

A fit is ``good`` when every enabled threshold passes, else ``suspect`` with the reasons.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from fitter.checks import check_bool, check_float
from morphable_models.model import PART_NAMES

GOOD = "good"
SUSPECT = "suspect"


@dataclass
class QualityConfig:
    """Thresholds of the quality flag.

    Attributes:
        min_part_iou: lowest acceptable mean Part IoU (0..1); None disables the check.
        max_nme: highest acceptable landmark NME (fraction of the outer-eye-corner distance); None
            disables the check.
        require_converged: a fit that hit the iteration cap is suspect.
    """

    min_part_iou: Optional[float] = 0.5
    max_nme: Optional[float] = 0.08
    require_converged: bool = True

    def __post_init__(self) -> None:
        """Check every value; ValueError naming the first bad one."""
        if self.min_part_iou is not None:
            self.min_part_iou = check_float("min_part_iou", self.min_part_iou, lo=0.0, hi=1.0)
        if self.max_nme is not None:
            self.max_nme = check_float("max_nme", self.max_nme, lo=0.0)
        self.require_converged = check_bool("require_converged", self.require_converged)


@dataclass
class QualityMetrics:
    """Measured agreement of one fit with its targets (None = could not be measured)."""

    part_iou: Optional[float]
    part_iou_parts: Dict[str, float] = field(default_factory=dict)
    nme: Optional[float] = None
    converged: bool = False
    iterations: int = 0


@dataclass
class QualityFlag:
    flag: str
    reasons: List[str] = field(default_factory=list)


def assess(metrics: QualityMetrics, config: QualityConfig) -> QualityFlag:
    """``good`` if every enabled threshold passes, else ``suspect`` with one reason per failed check."""
    reasons: List[str] = []
    if config.min_part_iou is not None:
        if metrics.part_iou is None or not math.isfinite(metrics.part_iou):
            reasons.append("part IoU unavailable")
        elif metrics.part_iou < config.min_part_iou:
            reasons.append(f"part IoU {metrics.part_iou:.3f} < {config.min_part_iou:g}")
    if config.max_nme is not None:
        if metrics.nme is None or not math.isfinite(metrics.nme):
            reasons.append("landmark NME unavailable")
        elif metrics.nme > config.max_nme:
            reasons.append(f"landmark NME {metrics.nme:.3f} > {config.max_nme:g}")
    if config.require_converged and not metrics.converged:
        reasons.append(f"not converged ({metrics.iterations} iterations)")
    return QualityFlag(SUSPECT if reasons else GOOD, reasons)


def cleaned_fit_labels(pred: np.ndarray, occlusion: np.ndarray, forehead_line: Optional[np.ndarray]) -> np.ndarray:
    """Apply the target cleaning to a rendered label map.

    Args:
        pred: [H, W] uint8 labels of the fit (0 background, i + 1 = PART_NAMES[i]).
        occlusion: [H, W] bool, True where the target says an occluder covers the face.
        forehead_line: (3,) (a, b, c); skin pixels with a*x + b*y + c < 0 are dropped. None = no cut.
    Returns:
        [H, W] uint8 copy with those pixels set to 0.
    """
    out = np.array(pred, dtype=np.uint8, copy=True)
    out[np.asarray(occlusion, bool)] = 0
    if forehead_line is not None:
        a, b, c = (float(v) for v in np.asarray(forehead_line).reshape(3))
        H, W = out.shape
        ys, xs = np.mgrid[0:H, 0:W]
        above = (a * xs + b * ys + c) < 0
        out[above & (out == PART_NAMES.index("skin") + 1)] = 0
    return out


def present_part_iou(pred: np.ndarray, target: np.ndarray) -> Dict[str, float]:
    """Part -> IoU for the parts present in ``target`` ([H, W] label maps, same size)."""
    from fitter.metrics import part_ious

    ious = part_ious(pred, target)
    return {p: float(ious[i]) for i, p in enumerate(PART_NAMES) if np.any(target == i + 1)}


def fit_quality_metrics(result, model) -> QualityMetrics:
    """Metrics of one :class:`fitter.result.FitResult` against its own ``result.targets``.

    ``model`` is the :class:`MorphableModel` fitted (for its triangles and part labels).
    """
    import torch

    from fitter.metrics import landmark_nme, render_part_labels

    t = result.targets
    metrics = QualityMetrics(part_iou=None, converged=bool(result.converged), iterations=int(result.iterations))
    if t is None:
        return metrics
    valid = np.asarray(t.landmark_valid, bool)
    if valid.any() and valid[36] and valid[45]:
        metrics.nme = landmark_nme(result.landmarks2d, t.landmarks, valid)
    W, H = t.size
    pts = torch.as_tensor(np.asarray(result.vertices_image, np.float32), device=model.device)[None]
    depth = torch.as_tensor(np.asarray(result.vertices_camera, np.float32)[:, 2], device=model.device)[None]
    pred = render_part_labels(model, pts, depth, (W, H))[0]
    pred = cleaned_fit_labels(pred, t.occlusion, t.forehead_line)
    parts = present_part_iou(pred, np.asarray(t.part_masks))
    metrics.part_iou_parts = parts
    metrics.part_iou = float(np.mean(list(parts.values()))) if parts else None
    return metrics
