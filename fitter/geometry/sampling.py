"""Farthest point sampling, the one implementation: the model's part point sets
(:mod:`fitter.optimize`, from index 0) and the photo's part pixels
(:func:`fitter.targets.preprocess.thin_points`, from the pixel nearest the centroid) both use it.
"""
from __future__ import annotations

import torch
from torch import Tensor


def farthest_point_sample(points: Tensor, k: int, start: int = 0) -> Tensor:
    """Farthest point sampling: greedily pick the point farthest from those already picked.

    Deterministic: the first pick is ``start``; ties go to the lowest index.

    Args:
        points: [N, D] or [B, N, D].
        k: number of samples, 0 <= k <= N.
        start: index of the first sample.
    Returns:
        [k] (or [B, k]) long indices into the point dimension, all distinct when the points are.
    """
    if points.dim() not in (2, 3):
        raise ValueError(f"points must be [N, D] or [B, N, D], got {tuple(points.shape)}")
    batched = points.dim() == 3
    pts = points if batched else points.unsqueeze(0)
    B, N, _ = pts.shape
    if not 0 <= k <= N:
        raise ValueError(f"cannot sample k={k} of {N} points")
    if k > 0 and not 0 <= start < N:
        raise ValueError(f"start={start} outside [0, {N})")
    if k == 0:
        out = torch.empty(B, 0, dtype=torch.long, device=pts.device)
    elif pts.device.type == "cpu":
        out = torch.from_numpy(_fps_numpy(pts.detach().numpy(), k, start))
    else:
        out = _fps_torch(pts.detach(), k, start)
    return out if batched else out[0]


def _fps_numpy(p, k: int, start: int):
    """The CPU loop: numpy ufuncs in place on the points' memory ([B, N, D] array, its dtype),
    squared distances accumulated column by column, (dx² + dy²) + ... (torch's per-op overhead is
    several times numpy's, and the loop is thousands of small ops). Returns [B, k] int64."""
    import numpy as np

    B, N, D = p.shape
    cols = [np.ascontiguousarray(p[:, :, c]) for c in range(D)]
    nearest = np.full((B, N), np.inf, dtype=p.dtype)
    acc, tmp = np.empty_like(nearest), np.empty_like(nearest)
    rows = np.arange(B)
    out = np.empty((B, k), dtype=np.int64)
    out[:, 0] = start
    last = out[:, 0].copy()
    for i in range(1, k):
        np.subtract(cols[0], cols[0][rows, last][:, None], out=acc)
        np.multiply(acc, acc, out=acc)
        for c in cols[1:]:
            np.subtract(c, c[rows, last][:, None], out=tmp)
            np.multiply(tmp, tmp, out=tmp)
            np.add(acc, tmp, out=acc)
        np.minimum(nearest, acc, out=nearest)
        last = nearest.argmax(axis=1)  # the first maximum: ties to the lowest index
        out[:, i] = last
    return out


def _fps_torch(p: Tensor, k: int, start: int) -> Tensor:
    """The loop on an accelerator (no host round trip per pick). Returns [B, k] long."""
    B, N, D = p.shape
    out = torch.empty(B, k, dtype=torch.long, device=p.device)
    with torch.no_grad():
        nearest = torch.full((B, N), float("inf"), device=p.device, dtype=p.dtype)
        last = torch.full((B, 1), start, dtype=torch.long, device=p.device)
        out[:, 0] = start
        for i in range(1, k):
            q = p.gather(1, last.unsqueeze(-1).expand(B, 1, D))  # [B, 1, D]
            nearest = torch.minimum(nearest, (p - q).square().sum(-1))
            last = nearest.argmax(dim=1, keepdim=True)
            out[:, i] = last.squeeze(1)
    return out
