"""Differentiable soft silhouettes of mesh parts (SoftRas-style), a comparison baseline for PRDL.

For an output pixel centre p and a triangle j, with d_j(p) the Euclidean distance from p to the
triangle's boundary (in output pixels) and δ = +1 inside / -1 outside,

    D_j(p) = sigmoid(δ · d_j(p)² / σ),          silhouette(p) = 1 − Π_j (1 − D_j(p)),

computed as ``1 − exp(Σ_j logsigmoid(−δ d² / σ))`` for stability. Pairs (triangle, pixel) with
the pixel farther than ``sqrt(cutoff · σ)`` outside the triangle's bounding box contribute less
than e^-cutoff each and are skipped, so the work is proportional to the area the mesh covers, not
to (triangles × pixels). Pairs are processed in chunks of ``max_pairs``; with gradients enabled each
chunk is wrapped in ``torch.utils.checkpoint`` so the memory held for backward stays bounded.

The output grid has h×w cells covering the W×H image: cell (i, j) has its centre at image position
``x = (j + 0.5) W / w − 0.5``, ``y = (i + 0.5) H / h − 0.5`` (the same cells as
``adaptive_avg_pool2d`` of a full-resolution mask; see :func:`masks_to_resolution`).
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple, Union

import torch
import torch.nn.functional as Fn
from torch import Tensor
from torch.utils.checkpoint import checkpoint


def _resolution(resolution: Union[int, Tuple[int, int]]) -> Tuple[int, int]:
    if isinstance(resolution, int):
        return resolution, resolution
    w, h = (int(r) for r in resolution)
    return w, h


def soft_silhouettes(
    points_img: Tensor,
    triangles_per_part: Sequence[Tensor],
    size: Tuple[int, int],
    sigma: float = 1.0,
    resolution: Union[int, Tuple[int, int]] = 64,
    cutoff: float = 20.0,
    max_pairs: int = 1 << 21,
) -> Tensor:
    """Soft silhouette of every part, differentiable w.r.t. the projected vertices.

    Args:
        points_img: [B, V, 2] projected vertices, pixels (x, y) of the W×H image.
        triangles_per_part: P tensors [F_p, 3] of vertex indices (an empty part gives zeros).
        size: (W, H) of the image the points live in.
        sigma: sharpness σ in squared *output* pixels (smaller = harder edges).
        resolution: output size, an int for square or (w, h).
        cutoff: skip (triangle, pixel) pairs whose term is below e^-cutoff.
        max_pairs: pairs evaluated at once (memory bound).
    Returns:
        [B, P, h, w] silhouettes in [0, 1].
    """
    if points_img.dim() != 3 or points_img.shape[-1] != 2:
        raise ValueError(f"points_img must be [B, V, 2], got {tuple(points_img.shape)}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    W, H = float(size[0]), float(size[1])
    w, h = _resolution(resolution)
    B = points_img.shape[0]
    # Image pixels -> output-grid pixels (cell centres at integers).
    scale = points_img.new_tensor([w / W, h / H])
    pts = (points_img + 0.5) * scale - 0.5
    sils: List[Tensor] = []
    for tris in triangles_per_part:
        if tris.dim() != 2 or tris.shape[1] != 3:
            raise ValueError(f"each part's triangles must be [F, 3], got {tuple(tris.shape)}")
        log_keep = _log_uncovered(pts, tris.to(device=pts.device, dtype=torch.long), w, h, sigma, cutoff, max_pairs)
        sils.append(1.0 - torch.exp(log_keep).view(B, h, w))
    if not sils:
        return points_img.new_zeros(B, 0, h, w)
    return torch.stack(sils, dim=1)


def _log_uncovered(pts: Tensor, tris: Tensor, w: int, h: int, sigma: float, cutoff: float, max_pairs: int) -> Tensor:
    """[B, h*w] Σ_j log(1 − D_j(p)) over the triangles ``tris``."""
    B = pts.shape[0]
    total = pts.new_zeros(B * h * w)
    Fp = tris.shape[0]
    if Fp == 0:
        return total.view(B, h * w)
    radius = math.sqrt(cutoff * sigma)
    with torch.no_grad():
        corners = pts[:, tris]  # [B, F, 3, 2]
        lo = torch.ceil(corners.amin(dim=2) - radius).to(torch.long)
        hi = torch.floor(corners.amax(dim=2) + radius).to(torch.long)
        lo[..., 0].clamp_(0, w)
        lo[..., 1].clamp_(0, h)
        hi[..., 0].clamp_(-1, w - 1)
        hi[..., 1].clamp_(-1, h - 1)
        bw = (hi[..., 0] - lo[..., 0] + 1).clamp_min(0).reshape(-1)
        bh = (hi[..., 1] - lo[..., 1] + 1).clamp_min(0).reshape(-1)
        finite = torch.isfinite(corners).all(dim=(2, 3)).reshape(-1)
        counts = torch.where(finite, bw * bh, torch.zeros_like(bw))
        lo = lo.reshape(-1, 2)
        live = torch.nonzero(counts > 0).squeeze(1)
    if live.numel() == 0:
        return total.view(B, h * w)
    ends = torch.cumsum(counts[live], 0)
    n_chunks = max(1, -(-int(ends[-1]) // max_pairs))
    if n_chunks == 1:
        bounds = [0, live.numel()]
    else:
        marks = torch.arange(1, n_chunks, device=pts.device) * max_pairs
        bounds = sorted(set([0] + torch.searchsorted(ends, marks, right=True).tolist() + [live.numel()]))
    for s, e in zip(bounds[:-1], bounds[1:]):
        if e <= s:
            continue
        idx = live[s:e]
        with torch.no_grad():
            px, py, bidx, fidx = _enumerate_pairs(idx, counts[idx], lo[idx], bw[idx], Fp)
        args = (pts, tris, px, py, bidx, fidx, sigma)
        if torch.is_grad_enabled() and pts.requires_grad:
            term = checkpoint(_pair_log_terms, *args, use_reentrant=False)
        else:
            term = _pair_log_terms(*args)
        total = total.index_add(0, bidx * (h * w) + py * w + px, term)
    return total.view(B, h * w)


def _enumerate_pairs(idx: Tensor, counts: Tensor, lo: Tensor, bw: Tensor, Fp: int):
    """(px, py, batch, triangle) of every pixel in the boxes of ``idx`` (flat b*F + f)."""
    n = int(counts.sum())
    device = idx.device
    owner = torch.repeat_interleave(torch.arange(idx.numel(), device=device), counts, output_size=n)
    start = torch.cumsum(counts, 0) - counts
    local = torch.arange(n, device=device) - start[owner]
    width = bw[owner]
    px = lo[owner, 0] + local % width
    py = lo[owner, 1] + torch.div(local, width, rounding_mode="floor")
    flat = idx[owner]
    b = torch.div(flat, Fp, rounding_mode="floor")
    return px, py, b, flat - b * Fp


def _pair_log_terms(
    pts: Tensor, tris: Tensor, px: Tensor, py: Tensor, bidx: Tensor, fidx: Tensor, sigma: float
) -> Tensor:
    """log(1 − D) = logsigmoid(−δ d² / σ) for each (pixel, triangle) pair; differentiable w.r.t. pts."""
    c = pts[bidx.unsqueeze(1), tris[fidx]]  # [n, 3, 2]
    p = torch.stack((px, py), dim=-1).to(pts.dtype).unsqueeze(1)  # [n, 1, 2]
    a = c
    b = c.roll(-1, dims=1)
    edge = b - a  # [n, 3, 2]
    rel = p - a
    t = ((rel * edge).sum(-1) / (edge * edge).sum(-1).clamp_min(1e-12)).clamp(0.0, 1.0)
    d2 = (rel - t.unsqueeze(-1) * edge).pow(2).sum(-1).amin(dim=1)  # [n]
    # Inside: the pixel is on the same side of all three edges (either orientation).
    cross = edge[..., 0] * rel[..., 1] - edge[..., 1] * rel[..., 0]  # [n, 3]
    inside = ((cross > 0).all(dim=1) | (cross < 0).all(dim=1)).to(pts.dtype)
    sign = 2.0 * inside - 1.0
    return Fn.logsigmoid(-sign * d2 / sigma)


def masks_to_resolution(masks: Tensor, resolution: Union[int, Tuple[int, int]]) -> Tensor:
    """Area-average full-resolution masks onto the soft-silhouette grid.

    Args:
        masks: [B, P, H, W] float (or bool) masks.
        resolution: output size, int or (w, h).
    Returns:
        [B, P, h, w] float in [0, 1] (fraction of each cell covered).
    """
    if masks.dim() != 4:
        raise ValueError(f"masks must be [B, P, H, W], got {tuple(masks.shape)}")
    w, h = _resolution(resolution)
    x = masks if masks.is_floating_point() else masks.to(torch.float32)
    return Fn.adaptive_avg_pool2d(x, (h, w))
