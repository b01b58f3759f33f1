"""Accuracy measures for the front end (pure numpy): landmark NME, mask IoU, eye/mouth opening."""
from __future__ import annotations

from typing import Optional

import numpy as np


def landmark_nme(pred: np.ndarray, gt: np.ndarray, valid: Optional[np.ndarray] = None) -> float:
    """Mean point error over the outer-eye-corner distance |gt36 - gt45| (a fraction, not %).

    Args:
        pred, gt: [68, 2] pixels.
        valid: [68] bool, points to average over (None = all).
    """
    p, g = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if p.shape != (68, 2) or g.shape != (68, 2):
        raise ValueError(f"landmarks must be [68, 2], got {p.shape} and {g.shape}")
    d = np.linalg.norm(g[36] - g[45])
    if d <= 0:
        raise ValueError("ground-truth outer eye corners coincide")
    err = np.linalg.norm(p - g, axis=1)
    if valid is not None:
        err = err[np.asarray(valid, bool)]
    return float(err.mean() / d)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (NaN when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else float("nan")


def eye_opening(lm: np.ndarray) -> float:
    """Mean over both eyes of (vertical lid distance) / (eye width) from iBUG-68 landmarks."""
    lm = np.asarray(lm, np.float64)

    def one(s: int) -> float:
        p = lm[s:s + 6]
        return (np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2 * np.linalg.norm(p[0] - p[3]))

    return 0.5 * (one(36) + one(42))


def mouth_opening(lm: np.ndarray) -> float:
    """Inner-lip distance |p62 - p66| over mouth width |p48 - p54|."""
    lm = np.asarray(lm, np.float64)
    return float(np.linalg.norm(lm[62] - lm[66]) / np.linalg.norm(lm[48] - lm[54]))
