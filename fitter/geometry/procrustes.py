"""Closed-form weak-perspective alignment of 3D points to 2D points (the fit's rigid start).

Solves ``x ≈ s · R[:2] · Y + a`` in least squares: the affine map of the centred points
``A = lstsq(Y_c, x_c)ᵀ`` [2, 3] is projected onto scaled rotations by its SVD ``A = U S Vᵀ``:
``R[:2] = U Vᵀ``, ``s = mean(S)``, the third row ``R[2] = R[0] × R[1]``, and ``a`` matches the
centroids.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor


def weak_procrustes(Y: Tensor, x: Tensor) -> Tuple[Tensor, Tensor]:
    """Closed-form weak-perspective fit x ≈ s·R[:2]·Y + a.

    Args:
        Y: [N, 3] model landmarks (already flipped to camera axes). x: [N, 2] image points
            relative to the principal point.
    Returns:
        R [3, 3] rotation and (a_x / s, a_y / s, s): translation in model units and the scale
        (pixels per model unit).
    """
    if Y.dim() != 2 or Y.shape[-1] != 3 or x.shape != (Y.shape[0], 2):
        raise ValueError(f"need Y [N, 3] and x [N, 2], got {tuple(Y.shape)} and {tuple(x.shape)}")
    Yc = Y - Y.mean(0)
    xc = x - x.mean(0)
    A = torch.linalg.lstsq(Yc, xc).solution.T  # [2, 3]
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    R2 = U @ Vh
    s = S.mean()
    r3 = torch.linalg.cross(R2[0], R2[1])
    R = torch.stack([R2[0], R2[1], r3])
    a = x.mean(0) - s * (R2 @ Y.mean(0))
    return R, torch.stack([a[0] / s, a[1] / s, s])
