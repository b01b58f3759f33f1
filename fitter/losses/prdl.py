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
(:func:`prdl_descriptors_naive`, kept for tests and the benchmark). Below a budget
(``DEFAULT_KEEP_BUDGET`` pairs per call, the size of a fit's parts) the distances are kept for
the backward pass instead, which trades 32 MiB at most for not computing them twice.

Speed. On the regular anchor grid the squared distances are one broadcast sum of per-column
and per-row tables (any other anchors: one matrix product of augmented rows); f_ave uses d² ·
rsqrt(d²), whose rsqrt the backward pass reuses; the nearest point comes from block minima; f_max
is searched only among the points that may be convex-hull vertices (the farthest point of a set
from anywhere is one), found by Akl–Toussaint pruning. Those two searches pay on a CPU, where a
pass over the pairs costs more than the bookkeeping; on a GPU (any device but the CPU) the op
instead takes plain argmin / argmax passes over larger chunks (``DEFAULT_PAIR_BUDGET_GPU``) and
avoids work that waits for the device (no hull compaction, no test for a zero gradient).
"""
from __future__ import annotations

import functools
from typing import Optional, Tuple

import torch
from torch import Tensor

#: Distances below this (pixels) count as zero in the gradient's unit vectors.
DIST_EPS = 1e-9

#: Default budget of anchor × point pairs evaluated at once (elements of one float tensor; the
#: forward/backward hold about five such temporaries). 1 M pairs was as fast as larger chunks on CPU.
DEFAULT_PAIR_BUDGET = 1 << 20

#: The same on a GPU: fewer, larger chunks (launches, not arithmetic, bound small chunks there);
#: 16 M float32 pairs = 64 MiB per temporary.
DEFAULT_PAIR_BUDGET_GPU = 1 << 24

#: Up to this many anchor × point pairs per call (32 MiB of float32), the forward pass keeps its
#: distances for the backward pass instead of recomputing them (about 2× faster on CPU); above
#: it, memory stays O(chunk · N) as described above.
DEFAULT_KEEP_BUDGET = 1 << 23

#: Distance (pixels) at which padding / invalid points are put in the squared-distance tables.
_FAR = 1e6

#: Block of points in the two-level argmin (point sets are padded to a multiple of it).
_BLOCK = 32


# --------------------------------------------------------------------------- anchors
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


def _chunk(chunk_size: Optional[int], M: int, N: int, A: int, device: torch.device) -> int:
    if chunk_size is not None:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        return int(chunk_size)
    budget = DEFAULT_PAIR_BUDGET if device.type == "cpu" else DEFAULT_PAIR_BUDGET_GPU
    return max(1, min(A, budget // max(1, M * N)))


def _dense_search(device: torch.device) -> bool:
    """True where f_min / f_max come from plain argmin / argmax passes over every pair (GPUs);
    False on the CPU (block minima and convex-hull candidates, see the module docstring)."""
    return device.type != "cpu"


class _SquaredDistances:
    """Squared anchor-to-point distances [M, c, N] (at least DIST_EPS²), chunk by chunk of anchors.

    Two ways, same result: when the anchors are a full row-major grid (what
    :func:`make_anchors` makes, detected by :func:`_grid_width`), d² = (x_j − p_x)² + (y_i − p_y)²
    is one broadcast sum of two small tables [M, gw, N] and [M, gh, N] (exact, and cheaper than
    a product); otherwise ‖a‖² + ‖p‖² − 2 a·p is one matrix product of augmented rows
    (x, y, ‖p‖², 1) · (−2a_x, −2a_y, 1, ‖a‖²), clamped at 0 (good to about 1e-3 px in float32
    on coordinates centred on the anchors). Invalid points are put ``_FAR`` px from every anchor
    (never the nearest; their f_ave weight is 0). Chunks hold whole grid rows.
    """

    def __init__(self, pts_c: Tensor, val: Tensor, anc_c: Tensor, chunk: int, grid_width: int):
        self.A = anc_c.shape[0]
        far2 = _FAR * _FAR
        if grid_width:  # anc_c = a grid minus a constant: the same grid shape
            self.gw = grid_width
            xs, ys = anc_c[:grid_width, 0], anc_c[::grid_width, 1]
            dx2 = (pts_c[..., 0].unsqueeze(1) - xs.view(1, -1, 1)).square_()  # [M, gw, N]
            self.dx2 = dx2.masked_fill_(~val.unsqueeze(1), far2)
            # + DIST_EPS²: d² is a sum of squares (never negative), so this replaces the clamp
            self.dy2 = (pts_c[..., 1].unsqueeze(1) - ys.view(1, -1, 1)).square_().add_(DIST_EPS * DIST_EPS)
            self.step = max(1, chunk // self.gw) * self.gw
        else:
            self.gw = 0
            p2 = torch.where(val, pts_c.square().sum(-1), torch.full_like(pts_c[..., 0], far2))
            self.pts_aug = torch.cat([pts_c, p2.unsqueeze(-1), torch.ones_like(p2).unsqueeze(-1)], -1).transpose(1, 2)
            self.anc_aug = torch.cat([-2.0 * anc_c, torch.ones_like(anc_c[:, :1]),
                                      anc_c.square().sum(-1, keepdim=True)], dim=-1)
            self.step = max(1, chunk)

    def farthest(self, idx: Tensor, idx_valid: Tensor) -> Tensor:
        """[M, A] position in ``idx`` [M, h] (candidate point indices, valid where ``idx_valid``)
        of each anchor's farthest candidate; on the grid from the same tables (one broadcast sum)."""
        M, h = idx.shape
        if self.gw:
            gh = self.A // self.gw
            # invalid candidates get a large negative square: never the farthest
            dx2 = self.dx2.gather(2, idx.unsqueeze(1).expand(M, self.gw, h))
            dx2 = dx2.masked_fill_(~idx_valid.unsqueeze(1), -_FAR * _FAR)
            dy2 = self.dy2.gather(2, idx.unsqueeze(1).expand(M, gh, h))
            return (dy2.unsqueeze(2) + dx2.unsqueeze(1)).view(M, self.A, h).argmax(dim=-1)
        aug = self.pts_aug.gather(2, idx.unsqueeze(1).expand(M, 4, h))  # [M, 4, h]
        d2 = torch.matmul(self.anc_aug, aug)  # [M, A, h]
        return d2.masked_fill_(~idx_valid.unsqueeze(1), -1.0).argmax(dim=-1)

    def ranges(self):
        return [(s, min(self.A, s + self.step)) for s in range(0, self.A, self.step)]

    def chunk(self, s: int, e: int) -> Tensor:
        if self.gw:
            r0, r1 = s // self.gw, e // self.gw
            M, _, N = self.dx2.shape
            return (self.dy2[:, r0:r1, None, :] + self.dx2[:, None, :, :]).view(M, e - s, N)
        return torch.matmul(self.anc_aug[s:e], self.pts_aug).clamp_min_(DIST_EPS * DIST_EPS)


def _grid_width(anc: Tensor) -> int:
    """gw when ``anc`` [A, 2] is a full row-major grid (y outer, x inner, rows of gw anchors, as
    :func:`make_anchors` makes), else 0."""
    A = anc.shape[0]
    if A < 2:
        return 0
    gw = int((anc[:, 1] == anc[0, 1]).cumprod(0).sum())  # length of the first row
    if gw < 1 or A % gw:
        return 0
    xs, ys = anc[:gw, 0], anc[::gw, 1]
    grid = torch.stack([xs.repeat(A // gw), ys.repeat_interleave(gw)], dim=-1)
    return gw if torch.equal(grid, anc) else 0


class _LastGrid:
    """The grid width of the last anchors tensor seen (a fit passes the same one on every
    evaluation, and the test costs several small passes): valid while it is the same object,
    unmodified (``_version``). Holds a reference to that one tensor; one tuple, swapped whole."""

    _last: Tuple[Optional[Tensor], int, int] = (None, -1, 0)

    @classmethod
    def width_of(cls, anc: Tensor) -> int:
        """:func:`_grid_width` of ``anc``, from the cache when it is the last tensor asked about."""
        last = cls._last
        if last[0] is anc and last[1] == anc._version:
            return last[2]
        width = _grid_width(anc)
        cls._last = (anc, anc._version, width)
        return width


def _argmin_last(x: Tensor, block: int) -> Tensor:
    """argmin over the last dim of x [M, c, N] (N a multiple of ``block``), first occurrence,
    as torch.argmin but through block minima (``amin`` is far faster than ``argmin`` on CPU):
    the first block holding the minimum, then the first position in that block."""
    M, c, N = x.shape
    xb = x.view(M, c, N // block, block)
    b = xb.amin(dim=-1).min(dim=-1).indices  # [M, c] (min's indices: faster than argmin here)
    rows = torch.arange(M, device=x.device).view(M, 1), torch.arange(c, device=x.device).view(1, c)
    inner = xb[rows[0], rows[1], b].min(dim=-1).indices  # the winning block of each row [M, c, block]
    return b * block + inner


@functools.lru_cache(maxsize=16)
def _directions(k: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """[2, k] unit vectors at angles 2πi/k (cached: the hull test runs on every evaluation)."""
    ang = torch.arange(k, dtype=torch.float64) * (2.0 * torch.pi / k)
    return torch.stack([ang.cos(), ang.sin()], dim=0).to(device=device, dtype=dtype)


def _row_dot(d: Tensor, w_col: Tensor) -> Tensor:
    """[M, c] = d [M, c, N] @ w_col [M, N, 1]. On the CPU a batched matrix-vector product is
    several times slower than a fused multiply-sum once M > 1, so that is used there."""
    if d.shape[0] == 1 or d.device.type != "cpu":
        return torch.bmm(d, w_col).squeeze(-1)
    return (d * w_col.transpose(1, 2)).sum(-1)


def _hull_candidates(pts: Tensor, val: Tensor, directions: int = 32) -> Tensor:
    """[M, N] bool: a superset of the convex-hull vertices of every valid point set.

    The farthest point of a set from any location is a vertex of the set's convex hull, so f_max
    only needs these points. Akl–Toussaint pruning: the extreme points in ``directions``
    directions span a convex polygon inside the hull; a point strictly inside that polygon is no
    hull vertex and is dropped. Exact up to float rounding at the polygon's edges (a point there
    is at most a rounding error beyond it); what is left is the ring of
    points near the boundary (typically a few per cent of a face part).
    """
    M, N, _ = pts.shape
    dirs = _directions(directions, pts.device, pts.dtype)  # [2, K], counter-clockwise
    proj = torch.matmul(pts, dirs).masked_fill_(~val.unsqueeze(-1), -float("inf"))  # [M, N, K]
    ext_idx = proj.argmax(dim=1)  # [M, K]
    ext = pts.gather(1, ext_idx.unsqueeze(-1).expand(M, directions, 2))  # [M, K, 2]
    edge = ext.roll(-1, dims=1) - ext  # [M, K, 2]
    # cross(edge_k, p − ext_k) = p · (−e_y, e_x) − cross(edge_k, ext_k): > 0 left of (inside) edge k
    normal = torch.stack([-edge[..., 1], edge[..., 0]], dim=1)  # [M, 2, K]
    offset = edge[..., 0] * ext[..., 1] - edge[..., 1] * ext[..., 0]  # [M, K]
    cross = torch.matmul(pts, normal) - offset.unsqueeze(1)  # [M, N, K]
    degenerate = (edge == 0).all(-1).unsqueeze(1)  # repeated extreme: no edge
    inside = ((cross > 0) | degenerate).all(-1)
    inside.scatter_(1, ext_idx, False)  # the extremes themselves (all of a one-point polygon)
    return val & ~inside


class PrdlDescriptorsFn(torch.autograd.Function):
    """(f_min, f_max, f_ave) of anchor-to-point distances with an analytic, chunked backward.

    f_ave is the mean weighted by ``wts`` [M, N] (0 for invalid points; the valid mask as floats
    gives the paper's plain mean). f_max is searched among :func:`_hull_candidates` only.
    Saved for backward: the inputs (points [M, N, 2], anchors, weights) and, per point set, the
    argmin/argmax point index of every anchor ([M, A] long each) and the weight sum [M] —
    O(M·(A + N)) memory — plus, only while M·A·N <= ``keep``, the 1/d chunks of the forward
    pass (then the backward reuses them instead of recomputing them). Gradient w.r.t. points only
    (anchors and the mask get none). Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, pts: Tensor, anc: Tensor, val: Tensor, wts: Tensor, chunk: int, keep: int = 0) -> Tensor:  # type: ignore[override]
        M, N, _ = pts.shape
        A = anc.shape[0]
        centre = anc.mean(0) if A else anc.new_zeros(2)
        out = pts.new_zeros(M, A, 3)
        arg_min = torch.zeros(M, A, dtype=torch.long, device=pts.device)
        arg_max = torch.zeros(M, A, dtype=torch.long, device=pts.device)
        count = val.sum(dim=1)  # [M]
        wsum = wts.sum(dim=1)  # [M]
        has = (count > 0).view(M, 1)
        kept, ranges, grid_width = [], [], 0
        if N > 0 and A > 0:
            anc_c = anc - centre
            pts_p, val_p = _pad_to_block(pts - centre, val)
            w_col = torch.nn.functional.pad(wts, (0, pts_p.shape[1] - N)).unsqueeze(-1)  # [M, Np, 1]
            grid_width = _LastGrid.width_of(anc)
            table = _SquaredDistances(pts_p, val_p, anc_c, chunk, grid_width)
            ranges = table.ranges()
            store = M * A * N <= keep
            dense = _dense_search(pts.device)
            near = val_p.unsqueeze(1).to(pts.dtype) if dense else None  # [M, 1, Np]: 0 for invalid points
            for s, e in ranges:
                d2 = table.chunk(s, e)  # [M, c, Np]
                amin = d2.argmin(dim=-1) if dense else _argmin_last(d2, _BLOCK)
                arg_min[:, s:e] = amin.clamp_max_(N - 1)  # (a set of no point: any)
                if dense:  # invalid points are _FAR away: weigh them 0 for the farthest
                    arg_max[:, s:e] = (d2 * near).argmax(dim=-1).clamp_max_(N - 1)
                inv = d2.rsqrt()  # 1 / d (d² >= DIST_EPS²), kept for the backward
                d = d2.mul_(inv)
                out[:, s:e, 2] = _row_dot(d, w_col) / wsum.clamp_min(1e-30).view(M, 1)
                if store:
                    kept.append(inv)
            if not dense:  # the farthest point is a hull vertex: search the (few) candidates only
                hull = compact_index(_hull_candidates(pts_p[:, :N], val))  # [M, h]
                if hull.shape[1] > 0:
                    arg_max = hull.gather(1, table.farthest(hull, val.gather(1, hull)))
            # f_min / f_max exactly from the selected points
            for col, idx in ((0, arg_min), (1, arg_max)):
                sel = pts.gather(1, idx.unsqueeze(-1).expand(M, A, 2))
                exact = (sel - anc.unsqueeze(0)).norm(dim=-1)
                out[..., col] = torch.where(has, exact, torch.zeros_like(exact))
        ctx.save_for_backward(pts, anc, wts, arg_min, arg_max, count, wsum)
        ctx.chunk, ctx.ranges, ctx.kept, ctx.grid_width = chunk, ranges, kept, grid_width
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        pts, anc, wts, arg_min, arg_max, count, wsum = ctx.saved_tensors
        kept, ctx.kept = ctx.kept, []
        M, N, _ = pts.shape
        A = anc.shape[0]
        grad = torch.zeros_like(pts)
        none = (None,) * 5
        if N == 0 or A == 0 or not ctx.needs_input_grad[0]:
            return (grad,) + none
        has = (count > 0).to(pts.dtype).view(M, 1)
        # f_min, f_max: d‖p − a‖/dp = (p − a)/‖p − a‖ at the selected point.
        for col, idx in ((0, arg_min), (1, arg_max)):
            g = grad_out[..., col] * has  # [M, A]
            p_sel = pts.gather(1, idx.unsqueeze(-1).expand(M, A, 2))  # [M, A, 2]
            diff = p_sel - anc.unsqueeze(0)
            unit = diff / diff.norm(dim=-1, keepdim=True).clamp_min(DIST_EPS)
            grad.scatter_add_(1, idx.unsqueeze(-1).expand(M, A, 2), g.unsqueeze(-1) * unit)
        # f_ave: w_p Σ_i g_i (p − a_i)/‖p − a_i‖ / Σw = w_p (p Σ_i c_i − Σ_i c_i a_i) with
        # c_i = g_i / ‖p − a_i‖: one product of (g, g·a_x, g·a_y) [M, 3, c] with 1/d [M, c, N]
        # per anchor chunk (1/d kept from the forward pass, or recomputed).
        g_ave = grad_out[..., 2] * has / wsum.clamp_min(1e-30).view(M, 1)  # [M, A]
        if _dense_search(pts.device) or bool((g_ave != 0).any()):  # (the test waits for a GPU)
            centre = anc.mean(0)
            pts_c, anc_c = pts - centre, anc - centre
            table = None if kept else _SquaredDistances(*_pad_to_block(pts_c, wts > 0), anc_c, ctx.chunk,
                                                        ctx.grid_width)
            acc = pts.new_zeros(M, 3, N + -N % _BLOCK)  # rows: Σ c_i, Σ c_i a_x, Σ c_i a_y
            for k, (s, e) in enumerate(ctx.ranges):  # the forward pass's chunks
                inv = kept[k] if kept else table.chunk(s, e).rsqrt_()
                g = g_ave[:, s:e]  # [M, c]
                lhs = torch.stack([g, g * anc_c[s:e, 0], g * anc_c[s:e, 1]], dim=1)  # [M, 3, c]
                acc += torch.bmm(lhs, inv)
            acc = acc[..., :N]
            grad += (pts_c * acc[:, 0].unsqueeze(-1) - acc[:, 1:].transpose(1, 2)) * wts.unsqueeze(-1)
        return (grad,) + none


def _pad_to_block(pts: Tensor, valid: Tensor) -> Tuple[Tensor, Tensor]:
    """Point sets [M, N, 2] and their mask [M, N] padded with invalid points to a multiple of
    ``_BLOCK`` (for :func:`_argmin_last`; cheap: points, not pairs)."""
    pad = -pts.shape[1] % _BLOCK
    return torch.nn.functional.pad(pts, (0, 0, 0, pad)), torch.nn.functional.pad(valid, (0, pad))


def prdl_descriptors(
    points: Tensor,
    anchors: Tensor,
    valid: Optional[Tensor] = None,
    chunk_size: Optional[int] = None,
    weights: Optional[Tensor] = None,
    keep_pairs: int = DEFAULT_KEEP_BUDGET,
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
            that about ``DEFAULT_PAIR_BUDGET`` (1 M; on a GPU ``DEFAULT_PAIR_BUDGET_GPU``, 16 M)
            distances are live at a time.
        keep_pairs: while (sets × anchors × points) is at most this, the distances are kept for
            the backward pass (faster); 0 = always recompute (memory O(chunk · N)).
    Returns:
        [..., A, 3] (f_min, f_max, f_ave) in pixels; all 0 for a set with no valid point.
        Differentiable w.r.t. ``points`` (analytic backward, see :class:`PrdlDescriptorsFn`).
    """
    lead, pts, anc, val = _flatten(points, anchors, valid)
    M, N = pts.shape[:2]
    if valid is not None:  # padding may hold anything (NaN, inf): make it harmless
        pts = torch.where(val.unsqueeze(-1), pts, torch.zeros_like(pts))
    wts = _ave_weights(weights, val, pts.dtype)
    A = anc.shape[0]
    out = PrdlDescriptorsFn.apply(pts, anc, val, wts, _chunk(chunk_size, M, N, A, pts.device), int(keep_pairs))
    return out.reshape(*lead, A, 3)


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
def compact_index(valid: Tensor, n: Optional[int] = None) -> Tensor:
    """[M, n] indices that move the valid entries of every row of ``valid`` [M, N] to the front
    (order kept); n = the largest valid count (pass it when known: finding it waits for a GPU)."""
    order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)
    if n is None:
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

    Work: each part is compacted to its valid points first, so hidden points and padding (small
    parts padded to the skin's size) cost nothing; parts of similar size (within 2×, see
    :func:`_size_groups`) are then described together in one call, padded to the group's largest.

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
    target = target_desc.to(device=pred_points.device, dtype=pred_points.dtype)
    counts = valid.sum(dim=-1).amax(dim=0).tolist()  # [P] largest valid count per part
    losses = pred_points.new_zeros(B, P)
    for group in _size_groups(counts):
        # the parts of a group are described in one call, padded to the group's largest part
        pts, val, wts = [], [], []
        n = max(1, max(counts[p] for p in group))
        for p in group:
            idx = compact_index(valid[:, p], counts[p])
            idx = torch.cat([idx, idx.new_zeros(B, n - idx.shape[1])], dim=1) if idx.shape[1] < n else idx
            pad = torch.arange(n, device=idx.device) < counts[p]  # slots past the part's largest count
            pts.append(pred_points[:, p].gather(1, idx.unsqueeze(-1).expand(-1, -1, 2)))
            val.append(valid[:, p].gather(1, idx) & pad)
            if pred_weights is not None:
                wts.append(pred_weights[:, p].gather(1, idx))
        desc = prdl_descriptors(torch.stack(pts, 1), anchors, torch.stack(val, 1), chunk_size=chunk_size,
                                weights=torch.stack(wts, 1) if wts else None)  # [B, k, A, 3]
        diff = desc - target[:, group]
        losses = losses.index_copy(1, torch.tensor(group, device=losses.device), diff.square().sum(dim=(-1, -2)) / A)
    return losses


def _size_groups(counts, spread: float = 2.0):
    """Parts grouped so that each group's largest point count is at most ``spread`` × its
    smallest (bounded padding when a group is described in one call); largest first."""
    order = sorted(range(len(counts)), key=lambda p: -counts[p])
    groups = []
    for p in order:
        if groups and counts[p] * spread >= counts[groups[-1][0]]:
            groups[-1].append(p)
        else:
            groups.append([p])
    return groups


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
