"""Part Re-projection Distance Loss (PRDL), Wang et al. CVPR 2024 (arXiv 2312.00311), Sec. 3.3.

For a 2D point set C and anchors a_i (a regular grid over the image), the descriptor is

    Γ(C)[i] = (f_min, f_max, f_ave)(a_i) = (min_c ‖a_i − c‖, max_c ‖a_i − c‖, mean_c ‖a_i − c‖)

(Eq. 4-5, Euclidean distances in pixels). Per part p, with Γ_p from the projected visible model
points of the part and Γ*_p from the target segmentation's pixels (computed once per image),

    L_p = Σ_{i, j} (Γ_p[i, j] − Γ*_p[i, j])² / |A|,        L_prdl = Σ_p w_p L_p        (Eq. 6)

normalized by the number of anchors |A| = H×W of the grid; a part absent from the target gets
w_p = 0.

Memory. Γ needs every anchor-to-point distance, |A|×N of them (4096 × 8000 = 33 M). The
forward pass here walks the anchors in chunks, keeping O(chunk · N) at a time. The backward pass
does not need the distance matrix either: f_min and f_max depend on one point each (the argmin /
argmax kept from the forward pass), whose gradient is the unit vector (c − a)/‖c − a‖; f_ave's
gradient on point c is Σ_i g_i (c − a_i)/‖c − a_i‖ / n, recomputed chunk by chunk. So the
autograd graph holds the inputs plus O(|A|) indices per point set (see :class:`PrdlDescriptorsFn`),
instead of the O(|A|·N) tensors that ``torch`` autograd of the naive formula keeps
(:func:`prdl_descriptors_naive`, kept for tests and the benchmark).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

#: Distances below this (pixels) count as zero in the gradient's unit vectors.
DIST_EPS = 1e-9

#: Default budget of anchor × point pairs evaluated at once (elements of one float tensor; the
#: forward/backward hold about five such temporaries). 1 M pairs was as fast as larger chunks on CPU.
DEFAULT_PAIR_BUDGET = 1 << 20


# --------------------------------------------------------------------------- anchors and sampling
def make_anchors(
    grid: Tuple[int, int],
    size: Tuple[int, int],
    device: Optional[torch.device] = None,
    dtype: Optional[torch.dtype] = None,
) -> Tensor:
    """Regular anchor grid over the image: the centres of a gw × gh cell grid.

    Pixel centres are at integer coordinates, so the image spans [-0.5, W - 0.5] and cell j of
    gw has its centre at x = (j + 0.5) W / gw - 0.5 (same for y).

    Args:
        grid: (gw, gh) anchors along x and y.
        size: (W, H) image size in pixels.
    Returns:
        [gw * gh, 2] anchor positions (x, y) in pixels, row-major (y outer, x inner).
    """
    gw, gh = int(grid[0]), int(grid[1])
    W, H = float(size[0]), float(size[1])
    if gw <= 0 or gh <= 0 or W <= 0 or H <= 0:
        raise ValueError(f"anchor grid {grid} and image size {size} must be positive")
    dtype = dtype or torch.float32
    xs = (torch.arange(gw, device=device, dtype=dtype) + 0.5) * (W / gw) - 0.5
    ys = (torch.arange(gh, device=device, dtype=dtype) + 0.5) * (H / gh) - 0.5
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((xx.reshape(-1), yy.reshape(-1)), dim=-1)


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
    out = torch.empty(B, k, dtype=torch.long, device=pts.device)
    if k > 0:
        with torch.no_grad():
            p = pts.detach()
            nearest = torch.full((B, N), float("inf"), device=p.device, dtype=p.dtype)
            last = torch.full((B, 1), start, dtype=torch.long, device=p.device)
            out[:, 0] = start
            for i in range(1, k):
                q = p.gather(1, last.unsqueeze(-1).expand(B, 1, p.shape[-1]))  # [B, 1, D]
                nearest = torch.minimum(nearest, (p - q).square().sum(-1))
                last = nearest.argmax(dim=1, keepdim=True)
                out[:, i] = last.squeeze(1)
    return out if batched else out[0]


# --------------------------------------------------------------------------- descriptors
def _flatten(points: Tensor, anchors: Tensor, valid: Optional[Tensor]):
    if points.dim() < 2 or points.shape[-1] != 2:
        raise ValueError(f"points must be [..., N, 2], got {tuple(points.shape)}")
    if anchors.dim() != 2 or anchors.shape[-1] != 2:
        raise ValueError(f"anchors must be [A, 2], got {tuple(anchors.shape)}")
    lead, N = points.shape[:-2], points.shape[-2]
    if valid is None:
        valid = torch.ones(points.shape[:-1], dtype=torch.bool, device=points.device)
    elif valid.shape != points.shape[:-1]:
        raise ValueError(f"valid must be {tuple(points.shape[:-1])} like points[..., 0], got {tuple(valid.shape)}")
    M = 1
    for k in lead:
        M *= int(k)
    pts = points.reshape(M, N, 2)
    val = valid.to(device=points.device, dtype=torch.bool).reshape(M, N)
    anc = anchors.to(device=points.device, dtype=points.dtype)
    return lead, pts, anc, val


def _chunk(chunk_size: Optional[int], M: int, N: int, A: int) -> int:
    if chunk_size is not None:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        return int(chunk_size)
    return max(1, min(A, DEFAULT_PAIR_BUDGET // max(1, M * N)))


def _distances(pts: Tensor, anc: Tensor) -> Tensor:
    """[M, c, N] Euclidean distances from anchors [c, 2] to points [M, N, 2].

    Written as ‖a‖² + ‖p‖² − 2 a·p (one batched matrix product) on coordinates centred on the
    anchors, so that float32 keeps about 1e-3 px; the squared form is clamped at 0.
    """
    a2 = anc.square().sum(-1)  # [c]
    p2 = pts.square().sum(-1)  # [M, N]
    cross = torch.matmul(pts, anc.t()).transpose(1, 2)  # [M, c, N]
    d2 = cross.mul_(-2.0).add_(a2.view(1, -1, 1)).add_(p2.unsqueeze(1))
    return d2.clamp_min_(0.0).sqrt_()


class PrdlDescriptorsFn(torch.autograd.Function):
    """(f_min, f_max, f_ave) of anchor-to-point distances with an analytic, chunked backward.

    f_ave is the mean weighted by ``wts`` [M, N] (0 for invalid points; the valid mask as floats
    gives the paper's plain mean). Saved for backward: the inputs (points [M, N, 2], anchors,
    weights) and, per point set, the argmin/argmax point index of every anchor ([M, A] long each)
    and the valid count and weight sum [M] —
    O(M·(A + N)) memory, never an [A, N] tensor. Gradient w.r.t. points only (anchors and the mask
    get none). Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, pts: Tensor, anc: Tensor, val: Tensor, wts: Tensor, chunk: int) -> Tensor:  # type: ignore[override]
        M, N, _ = pts.shape
        A = anc.shape[0]
        centre = anc.mean(0) if A else anc.new_zeros(2)
        pts_c, anc_c = pts - centre, anc - centre
        out = pts.new_zeros(M, A, 3)
        arg_min = torch.zeros(M, A, dtype=torch.long, device=pts.device)
        arg_max = torch.zeros(M, A, dtype=torch.long, device=pts.device)
        count = val.sum(dim=1)  # [M]
        wsum = wts.sum(dim=1)  # [M]
        has = (count > 0).view(M, 1)
        all_valid = bool(val.all()) if N > 0 else True
        if N > 0:
            inval = (~val).unsqueeze(1)  # [M, 1, N]
            w_col = wts.unsqueeze(-1)  # [M, N, 1]
            for s in range(0, A, chunk):
                e = min(A, s + chunk)
                d = _distances(pts_c, anc_c[s:e])
                total = torch.bmm(d, w_col).squeeze(-1)
                if not all_valid:
                    d.masked_fill_(inval, float("inf"))
                imin = d.argmin(dim=-1)
                if not all_valid:
                    d.masked_fill_(inval, -float("inf"))
                imax = d.argmax(dim=-1)
                out[:, s:e, 2] = total / wsum.clamp_min(1e-30).view(M, 1)
                arg_min[:, s:e] = imin
                arg_max[:, s:e] = imax
            # f_min / f_max exactly from the selected points (the product form is good to ~1e-3 px)
            for col, idx in ((0, arg_min), (1, arg_max)):
                sel = pts.gather(1, idx.unsqueeze(-1).expand(M, A, 2))
                exact = (sel - anc.unsqueeze(0)).norm(dim=-1)
                out[..., col] = torch.where(has, exact, torch.zeros_like(exact))
        ctx.save_for_backward(pts, anc, wts, arg_min, arg_max, count, wsum)
        ctx.chunk = chunk
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        pts, anc, wts, arg_min, arg_max, count, wsum = ctx.saved_tensors
        M, N, _ = pts.shape
        A = anc.shape[0]
        grad = torch.zeros_like(pts)
        if N == 0 or not ctx.needs_input_grad[0]:
            return grad, None, None, None, None
        has = (count > 0).to(pts.dtype).view(M, 1)
        # f_min, f_max: d‖p − a‖/dp = (p − a)/‖p − a‖ at the selected point.
        for col, idx in ((0, arg_min), (1, arg_max)):
            g = grad_out[..., col] * has  # [M, A]
            p_sel = pts.gather(1, idx.unsqueeze(-1).expand(M, A, 2))  # [M, A, 2]
            diff = p_sel - anc.unsqueeze(0)
            unit = diff / diff.norm(dim=-1, keepdim=True).clamp_min(DIST_EPS)
            grad.scatter_add_(1, idx.unsqueeze(-1).expand(M, A, 2), g.unsqueeze(-1) * unit)
        # f_ave: w_p Σ_i g_i (p − a_i)/‖p − a_i‖ / Σw = w_p (p Σ_i c_i − Σ_i c_i a_i) with
        # c_i = g_i / ‖p − a_i‖, i.e. two reductions of [M, c, N] per anchor chunk.
        g_ave = grad_out[..., 2] * has / wsum.clamp_min(1e-30).view(M, 1)  # [M, A]
        if bool((g_ave != 0).any()):
            centre = anc.mean(0)
            pts_c, anc_c = pts - centre, anc - centre
            csum = torch.zeros_like(pts[..., 0])  # [M, N]
            ca = torch.zeros_like(pts)  # [M, N, 2]
            for s in range(0, A, ctx.chunk):
                e = min(A, s + ctx.chunk)
                c = _distances(pts_c, anc_c[s:e]).clamp_min_(DIST_EPS).reciprocal_().mul_(g_ave[:, s:e, None])
                csum += c.sum(dim=1)
                ca += torch.matmul(c.transpose(1, 2), anc_c[s:e])
            grad += (pts_c * csum.unsqueeze(-1) - ca) * wts.unsqueeze(-1)  # wts is 0 for invalid points
        return grad, None, None, None, None


def prdl_descriptors(
    points: Tensor,
    anchors: Tensor,
    valid: Optional[Tensor] = None,
    chunk_size: Optional[int] = None,
    weights: Optional[Tensor] = None,
) -> Tensor:
    """PRDL descriptor Γ: nearest, farthest and mean distance from each anchor to a point set.

    Args:
        points: [..., N, 2] point sets, pixels (x, y).
        anchors: [A, 2] anchor positions, pixels (cast to the points' device and dtype).
        valid: [..., N] bool, False for padding / hidden points (their coordinates are ignored,
            NaN allowed); None = all valid.
        weights: [..., N] >= 0, optional weights of the points in f_ave (f_ave = Σ w d / Σ w over
            the valid points); None = the paper's plain mean. Treated as constants (no gradient).
            A set whose valid weights sum to 0 falls back to the plain mean.
        chunk_size: anchors per chunk (memory ∝ chunk_size · N per point set); None picks one so
            that about ``DEFAULT_PAIR_BUDGET`` (1 M) distances are live at a time.
    Returns:
        [..., A, 3] (f_min, f_max, f_ave) in pixels; all 0 for a set with no valid point.
        Differentiable w.r.t. ``points`` (analytic backward, see :class:`PrdlDescriptorsFn`).
    """
    lead, pts, anc, val = _flatten(points, anchors, valid)
    M, N = pts.shape[:2]
    if valid is not None:  # padding may hold anything (NaN, inf): make it harmless
        pts = torch.where(val.unsqueeze(-1), pts, torch.zeros_like(pts))
    wts = _ave_weights(weights, val, pts.dtype)
    out = PrdlDescriptorsFn.apply(pts, anc, val, wts, _chunk(chunk_size, M, N, anc.shape[0]))
    return out.reshape(*lead, anc.shape[0], 3)


def _ave_weights(weights: Optional[Tensor], val: Tensor, dtype: torch.dtype) -> Tensor:
    """[M, N] f_ave weights: the valid mask, or the given weights on valid points (plain mean for
    a set whose weights sum to 0)."""
    plain = val.to(dtype)
    if weights is None:
        return plain
    if weights.shape[-1] != val.shape[-1] or weights.numel() != val.numel():
        raise ValueError(f"weights must have the shape of points[..., 0], got {tuple(weights.shape)}")
    w = weights.detach().to(device=val.device, dtype=dtype).reshape(val.shape)
    w = torch.where(val & torch.isfinite(w), w.clamp_min(0.0), torch.zeros_like(w))
    return torch.where((w.sum(dim=1) > 0).unsqueeze(1), w, plain)


def prdl_descriptors_naive(
    points: Tensor, anchors: Tensor, valid: Optional[Tensor] = None, weights: Optional[Tensor] = None
) -> Tensor:
    """Reference Γ through plain autograd on the full [..., A, N] distance matrix (tests, benchmark).

    Same arguments and result as :func:`prdl_descriptors`; memory O(A · N) forward and backward.
    """
    lead, pts, anc, val = _flatten(points, anchors, valid)
    d = (pts[:, None, :, :] - anc[None, :, None, :]).norm(dim=-1)  # [M, A, N]
    m = val[:, None, :]
    count = val.sum(dim=1).view(-1, 1)
    has = count > 0
    zero = torch.zeros((), dtype=d.dtype, device=d.device)
    f_min = torch.where(m, d, torch.full_like(d, float("inf"))).min(dim=-1).values
    f_max = torch.where(m, d, torch.full_like(d, -float("inf"))).max(dim=-1).values
    w = _ave_weights(weights, val, pts.dtype).unsqueeze(1)  # [M, 1, N]
    f_ave = torch.where(m, d * w, zero).sum(dim=-1) / w.sum(dim=-1).clamp_min(1e-30)
    f_min = torch.where(has, f_min, zero)
    f_max = torch.where(has, f_max, zero)
    out = torch.stack((f_min, f_max, f_ave), dim=-1)
    return out.reshape(*lead, anc.shape[0], 3)


# --------------------------------------------------------------------------- losses
def compact_index(valid: Tensor) -> Tensor:
    """[M, n] indices that move the valid entries of every row of ``valid`` [M, N] to the front
    (order kept), n = the largest valid count."""
    order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)
    n = int(valid.sum(dim=1).max()) if valid.numel() else 0
    return order[:, :n]


def compact_point_sets(points: Tensor, valid: Tensor) -> Tuple[Tensor, Tensor]:
    """Move the valid points of every set to the front and cut the common padding.

    Args:
        points: [M, N, 2]; valid: [M, N] bool.
    Returns:
        points [M, n, 2] and valid [M, n] with n = the largest valid count; the order of the valid
        points is kept. Differentiable (a gather).
    """
    idx = compact_index(valid)
    return points.gather(1, idx.unsqueeze(-1).expand(-1, -1, 2)), valid.gather(1, idx)


def prdl_part_losses(
    pred_points: Tensor,
    pred_valid: Tensor,
    target_desc: Tensor,
    anchors: Tensor,
    chunk_size: Optional[int] = None,
    pred_weights: Optional[Tensor] = None,
) -> Tensor:
    """Per-part PRDL: Σ over anchors and the 3 statistics of (Γ − Γ*)², divided by |A|.

    A predicted part with no valid point has Γ = 0, so its loss is Σ Γ*² / |A| — large when the
    target has that part, but with no gradient (nothing to move). The caller gives a part absent
    from the *target* the weight 0 (:func:`prdl_loss`), so that case contributes nothing.

    Work: each part is described separately after :func:`compact_point_sets`, so padding (small
    parts padded to the skin's size) and hidden points cost nothing.

    Args:
        pred_points: [B, P, N, 2] projected model points per part (padded), pixels.
        pred_valid: [B, P, N] bool, True for real, visible points.
        target_desc: [B, P, A, 3] target descriptors Γ* (from :func:`prdl_descriptors` of the
            target point sets, computed once per image).
        anchors: [A, 2] the anchors the targets were described with.
        pred_weights: [B, P, N] optional f_ave weights of the predicted points (see
            :func:`prdl_descriptors`); None = the paper's plain mean.
    Returns:
        [B, P] pixels².
    """
    if pred_points.dim() != 4 or pred_points.shape[-1] != 2:
        raise ValueError(f"pred_points must be [B, P, N, 2], got {tuple(pred_points.shape)}")
    B, P, N = pred_points.shape[:3]
    A = anchors.shape[0]
    if pred_valid.shape != (B, P, N):
        raise ValueError(f"pred_valid must be [{B}, {P}, {N}], got {tuple(pred_valid.shape)}")
    if target_desc.shape != (B, P, A, 3):
        raise ValueError(f"target_desc must be [{B}, {P}, {A}, 3], got {tuple(target_desc.shape)}")
    valid = pred_valid.to(device=pred_points.device, dtype=torch.bool)
    losses = []
    for p in range(P):
        idx = compact_index(valid[:, p])
        pts_p = pred_points[:, p].gather(1, idx.unsqueeze(-1).expand(-1, -1, 2))
        val_p = valid[:, p].gather(1, idx)
        w_p = None if pred_weights is None else pred_weights[:, p].gather(1, idx)
        desc = prdl_descriptors(pts_p, anchors, val_p, chunk_size=chunk_size, weights=w_p)  # [B, A, 3]
        diff = desc - target_desc[:, p].to(device=desc.device, dtype=desc.dtype)
        losses.append(diff.square().sum(dim=(-1, -2)) / A)
    return torch.stack(losses, dim=1)


def prdl_loss(
    pred_points: Tensor,
    pred_valid: Tensor,
    target_desc: Tensor,
    anchors: Tensor,
    weights: Tensor,
    chunk_size: Optional[int] = None,
    pred_weights: Optional[Tensor] = None,
) -> Tensor:
    """Weighted PRDL over parts (paper Eq. 6): Σ_p weights[b, p] · L_p.

    Args:
        pred_points, pred_valid, target_desc, anchors, pred_weights: as :func:`prdl_part_losses`.
        weights: [B, P] per-part weights; 0 for parts absent from the target.
    Returns:
        [B] pixels².
    """
    parts = prdl_part_losses(pred_points, pred_valid, target_desc, anchors, chunk_size=chunk_size,
                             pred_weights=pred_weights)
    if weights.shape != parts.shape:
        raise ValueError(f"weights must be {tuple(parts.shape)}, got {tuple(weights.shape)}")
    w = weights.to(device=parts.device, dtype=parts.dtype)
    # where(): a zero weight silences the part even if its loss were inf/NaN.
    return torch.where(w != 0, w * parts, torch.zeros_like(parts)).sum(dim=-1)
