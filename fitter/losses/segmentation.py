"""Segmentation-only comparison losses for the paper's Fig. 8/9 study (same inputs as PRDL).

Point-set losses between predicted part points X (projected model points) and target part pixels
Y, per part, then ``Σ_p weights[b, p] · value[b, p]``:

    icp_p2t   mean_{x∈X} ‖x − NN_Y(x)‖²                       (pixels²)
    icp_t2p   mean_{y∈Y} ‖y − NN_X(y)‖²                       (pixels²)
    chamfer   icp_p2t + icp_t2p                                (pixels²)
    dcd       ½ [mean_x (1 − e^{−α‖x − ŷ‖} / n_ŷ^λ) + mean_y (1 − e^{−α‖y − x̂‖} / n_x̂^λ)]
              density-aware chamfer (Wu et al., NeurIPS 2021): ŷ = NN_Y(x), n_ŷ = how many x share
              ŷ as nearest neighbour (likewise n_x̂); dimensionless, in [0, 1].

A part where either set is empty contributes 0 (give it weight 0 anyway). Nearest neighbours
are found without gradient in chunks of queries (memory O(chunk · N), e.g. 3000 × 3000 per part
never materialized at once), and the distance to the chosen neighbour is then recomputed
differentiably, which is the gradient of the min almost everywhere.

``soft_iou_loss`` compares soft silhouettes (:func:`fitter.geometry.soft_raster.soft_silhouettes`)
with target masks on the same grid.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

#: Default budget of query × reference pairs evaluated at once.
PAIR_BUDGET = 1 << 22


def _check_sets(pred_points, pred_valid, target_points, target_valid, weights) -> None:
    if pred_points.dim() != 4 or pred_points.shape[-1] != 2:
        raise ValueError(f"pred_points must be [B, P, N, 2], got {tuple(pred_points.shape)}")
    B, P = pred_points.shape[:2]
    if target_points.dim() != 4 or target_points.shape[:2] != (B, P) or target_points.shape[-1] != 2:
        raise ValueError(f"target_points must be [{B}, {P}, M, 2], got {tuple(target_points.shape)}")
    if pred_valid.shape != pred_points.shape[:3]:
        raise ValueError(f"pred_valid must be {tuple(pred_points.shape[:3])}, got {tuple(pred_valid.shape)}")
    if target_valid.shape != target_points.shape[:3]:
        raise ValueError(f"target_valid must be {tuple(target_points.shape[:3])}, got {tuple(target_valid.shape)}")
    if weights.shape != (B, P):
        raise ValueError(f"weights must be [{B}, {P}], got {tuple(weights.shape)}")


def nearest_neighbors(
    query: Tensor, query_valid: Tensor, ref: Tensor, ref_valid: Tensor, chunk_size: Optional[int] = None
) -> Tensor:
    """Index of the nearest valid reference point of every query point (no gradient).

    Args:
        query: [M, Nq, 2]; query_valid: [M, Nq] bool.
        ref: [M, Nr, 2]; ref_valid: [M, Nr] bool.
        chunk_size: queries per chunk; None keeps about 4 M distances live.
    Returns:
        [M, Nq] long (0 where the query is invalid or the set has no valid reference).
    """
    M, Nq = query.shape[:2]
    Nr = ref.shape[1]
    idx = torch.zeros(M, Nq, dtype=torch.long, device=query.device)
    if Nq == 0 or Nr == 0:
        return idx
    with torch.no_grad():
        # Each set on its own valid points: padding (small parts padded to the skin's size) and
        # hidden points cost nothing.
        for m in range(M):
            qi = torch.nonzero(query_valid[m]).flatten()
            ri = torch.nonzero(ref_valid[m]).flatten()
            if qi.numel() == 0 or ri.numel() == 0:
                continue
            q_all = query[m, qi].detach()
            r = ref[m, ri].detach().to(query.dtype)
            chunk = chunk_size or max(1, PAIR_BUDGET // ri.numel())
            for s in range(0, qi.numel(), chunk):
                q = q_all[s : s + chunk]
                d2 = (q[:, None, 0] - r[None, :, 0]).square_() + (q[:, None, 1] - r[None, :, 1]).square_()
                idx[m, qi[s : s + chunk]] = ri[d2.argmin(dim=-1)]
    return idx


def _nn_sq_dist(query, query_valid, ref, ref_valid, chunk_size) -> Tuple[Tensor, Tensor]:
    """Differentiable squared distance to the nearest valid reference [M, Nq] and its index."""
    idx = nearest_neighbors(query, query_valid, ref, ref_valid, chunk_size)
    nn = ref.gather(1, idx.unsqueeze(-1).expand(-1, -1, 2))
    return (query - nn).square().sum(dim=-1), idx


def _masked_mean(values: Tensor, valid: Tensor) -> Tensor:
    v = valid.to(values.dtype)
    return (values * v).sum(dim=-1) / v.sum(dim=-1).clamp_min(1.0)


def _flat(x: Tensor) -> Tensor:
    return x.reshape(-1, *x.shape[2:])


def _weighted_sum(values: Tensor, weights: Tensor, both: Tensor) -> Tensor:
    """Σ_p w · value over parts where both sets are non-empty; values [B, P]."""
    w = weights.to(device=values.device, dtype=values.dtype)
    keep = both & (w != 0)
    return torch.where(keep, w * values, torch.zeros_like(values)).sum(dim=-1)


def _directional(pred_points, pred_valid, target_points, target_valid, weights, chunk_size, from_pred: bool):
    _check_sets(pred_points, pred_valid, target_points, target_valid, weights)
    B, P = pred_points.shape[:2]
    X, xv = _flat(pred_points), _flat(pred_valid).to(torch.bool)
    Y, yv = _flat(target_points).to(X.dtype), _flat(target_valid).to(torch.bool)
    if from_pred:
        d2, _ = _nn_sq_dist(X, xv, Y, yv, chunk_size)
        val = _masked_mean(d2, xv)
    else:
        d2, _ = _nn_sq_dist(Y, yv, X, xv, chunk_size)
        val = _masked_mean(d2, yv)
    both = (xv.any(dim=-1) & yv.any(dim=-1)).view(B, P)
    return val.view(B, P), both


def icp_p2t_loss(pred_points, pred_valid, target_points, target_valid, weights, chunk_size: Optional[int] = None) -> Tensor:
    """ICP prediction → target: mean over predicted points of the squared distance to the nearest
    target point, weighted over parts.

    Args:
        pred_points: [B, P, N, 2] pixels; pred_valid: [B, P, N] bool.
        target_points: [B, P, M, 2] pixels; target_valid: [B, P, M] bool.
        weights: [B, P].
    Returns:
        [B] pixels².
    """
    val, both = _directional(pred_points, pred_valid, target_points, target_valid, weights, chunk_size, True)
    return _weighted_sum(val, weights, both)


def icp_t2p_loss(pred_points, pred_valid, target_points, target_valid, weights, chunk_size: Optional[int] = None) -> Tensor:
    """ICP target → prediction: mean over target points of the squared distance to the nearest
    predicted point, weighted over parts. Arguments as :func:`icp_p2t_loss`; returns [B] pixels²."""
    val, both = _directional(pred_points, pred_valid, target_points, target_valid, weights, chunk_size, False)
    return _weighted_sum(val, weights, both)


def chamfer_loss(pred_points, pred_valid, target_points, target_valid, weights, chunk_size: Optional[int] = None) -> Tensor:
    """Chamfer distance (sum of both ICP directions), weighted over parts.
    Arguments as :func:`icp_p2t_loss`; returns [B] pixels²."""
    p2t, both = _directional(pred_points, pred_valid, target_points, target_valid, weights, chunk_size, True)
    t2p, _ = _directional(pred_points, pred_valid, target_points, target_valid, weights, chunk_size, False)
    return _weighted_sum(p2t + t2p, weights, both)


def dcd_loss(
    pred_points,
    pred_valid,
    target_points,
    target_valid,
    weights,
    alpha: float = 0.2,
    n_lambda: float = 1.0,
    chunk_size: Optional[int] = None,
) -> Tensor:
    """Density-aware chamfer distance (Wu et al. 2021), weighted over parts.

    Args:
        pred_points, pred_valid, target_points, target_valid, weights: as :func:`icp_p2t_loss`.
        alpha: inverse length scale in 1/pixels of the e^{−α d} term (d Euclidean, pixels).
        n_lambda: exponent λ of the neighbour-count weight 1 / n^λ.
    Returns:
        [B] dimensionless, each part's term in [0, 1].
    """
    _check_sets(pred_points, pred_valid, target_points, target_valid, weights)
    B, P = pred_points.shape[:2]
    X, xv = _flat(pred_points), _flat(pred_valid).to(torch.bool)
    Y, yv = _flat(target_points).to(X.dtype), _flat(target_valid).to(torch.bool)

    def one_side(Q, qv, R, rv):
        d2, idx = _nn_sq_dist(Q, qv, R, rv, chunk_size)
        d = d2.clamp_min(1e-12).sqrt()
        counts = torch.zeros(R.shape[:2], dtype=Q.dtype, device=Q.device)
        counts.scatter_add_(1, idx, qv.to(Q.dtype))
        n = counts.gather(1, idx).clamp_min(1.0)
        return _masked_mean(1.0 - torch.exp(-alpha * d) / n.pow(n_lambda), qv)

    val = 0.5 * (one_side(X, xv, Y, yv) + one_side(Y, yv, X, xv))
    both = (xv.any(dim=-1) & yv.any(dim=-1)).view(B, P)
    return _weighted_sum(val.view(B, P), weights, both)


def soft_iou_loss(pred_sil: Tensor, target_masks: Tensor, weights: Tensor) -> Tensor:
    """Σ_p w_p (1 − soft IoU) with soft IoU = Σ s t / Σ (s + t − s t).

    Args:
        pred_sil: [B, P, h, w] soft silhouettes in [0, 1].
        target_masks: [B, P, h, w] float target masks in [0, 1] on the same grid.
        weights: [B, P].
    Returns:
        [B] dimensionless; a part empty in both counts as IoU 1 (loss 0).
    """
    if pred_sil.dim() != 4 or target_masks.shape != pred_sil.shape:
        raise ValueError(f"pred_sil and target_masks must both be [B, P, h, w], got "
                         f"{tuple(pred_sil.shape)} and {tuple(target_masks.shape)}")
    if weights.shape != pred_sil.shape[:2]:
        raise ValueError(f"weights must be {tuple(pred_sil.shape[:2])}, got {tuple(weights.shape)}")
    t = target_masks.to(device=pred_sil.device, dtype=pred_sil.dtype)
    inter = (pred_sil * t).sum(dim=(-1, -2))
    union = (pred_sil + t - pred_sil * t).sum(dim=(-1, -2))
    iou = torch.where(union > 1e-8, inter / union.clamp_min(1e-8), torch.ones_like(union))
    w = weights.to(device=pred_sil.device, dtype=pred_sil.dtype)
    return torch.where(w != 0, w * (1.0 - iou), torch.zeros_like(iou)).sum(dim=-1)
