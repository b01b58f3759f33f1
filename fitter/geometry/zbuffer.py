"""A vectorized z-buffer for triangle meshes: per pixel, the nearest triangle and its depth.

Pixel (i, j) of an H×W buffer has its centre at image position (x = j, y = i) (pixel centres at
integer coordinates). A pixel is covered by a triangle when its centre lies inside the projected
triangle (edges included). Depth is interpolated linearly in screen space from the vertex depths
(exact for weak perspective; for perspective the error is second order in the triangle size and
only affects the ordering of surfaces within a fraction of a triangle's depth).

Algorithm (no Python loop over triangles): every triangle enumerates the pixel centres of its
bounding box (``repeat_interleave``), keeps those inside it, and writes one int64 key per pixel
with ``scatter_reduce(amin)``. The key packs the depth (float32 bits mapped to an order-preserving
int32) in its high 32 bits and the triangle index in the low 32 bits, so one ``amin`` yields both
the nearest depth and which triangle it came from. Triangles are processed in chunks of at most
``max_candidates`` (triangle, pixel) pairs, so memory stays bounded for any image size.
Nothing here is differentiable; it runs under ``torch.no_grad``.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

_EMPTY = torch.iinfo(torch.int64).max
_LOW32 = 0xFFFFFFFF


def _check_mesh(points_img: Tensor, depth: Tensor, triangles: Tensor) -> None:
    if points_img.dim() != 3 or points_img.shape[-1] != 2:
        raise ValueError(f"points_img must be [B, V, 2], got {tuple(points_img.shape)}")
    if depth.shape != points_img.shape[:2]:
        raise ValueError(f"depth must be [B, V] = {tuple(points_img.shape[:2])}, got {tuple(depth.shape)}")
    if triangles.dim() != 2 or triangles.shape[1] != 3:
        raise ValueError(f"triangles must be [F, 3], got {tuple(triangles.shape)}")


def depth_to_key(depth: Tensor) -> Tensor:
    """float depths -> int64 whose order is the depth order (float32 bits, sign-corrected)."""
    bits = depth.to(torch.float32).contiguous().view(torch.int32).to(torch.int64)
    # Negative floats: flip the magnitude bits so that larger magnitude sorts lower.
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return bits


def key_to_depth(key: Tensor) -> Tensor:
    """Inverse of :func:`depth_to_key` (int64 high bits -> float32 depth)."""
    bits = torch.where(key < 0, key ^ 0x7FFFFFFF, key).to(torch.int32)
    return bits.view(torch.float32)


def _triangle_corners(points_img: Tensor, depth: Tensor, triangles: Tensor) -> Tuple[Tensor, Tensor]:
    """[B, F, 3, 2] corner pixels and [B, F, 3] corner depths."""
    tri = triangles.to(device=points_img.device, dtype=torch.long)
    return points_img[:, tri], depth[:, tri]


def rasterize_depth(
    points_img: Tensor,
    depth: Tensor,
    triangles: Tensor,
    size: Tuple[int, int],
    offset: Tuple[float, float] = (0.0, 0.0),
    max_candidates: int = 1 << 22,
) -> Tuple[Tensor, Tensor]:
    """Z-buffer a batch of meshes.

    Args:
        points_img: [B, V, 2] projected vertices, pixels (x, y).
        depth: [B, V] depth of each vertex (camera z; smaller = nearer).
        triangles: [F, 3] vertex indices.
        size: (W, H) of the buffer in pixels.
        offset: (ox, oy) image position of buffer pixel (0, 0)'s centre, pixels (lets a buffer
            extend beyond the image with negative offsets).
        max_candidates: cap on (triangle, pixel) pairs held at once (memory bound).
    Returns:
        depth_buffer [B, H, W] in the input's dtype (+inf where empty) and
        face_index [B, H, W] long (-1 where empty).
    """
    _check_mesh(points_img, depth, triangles)
    W, H = int(size[0]), int(size[1])
    B = points_img.shape[0]
    device = points_img.device
    with torch.no_grad():
        keys = torch.full((B * H * W,), _EMPTY, dtype=torch.int64, device=device)
        F_ = triangles.shape[0]
        if F_ == 0 or B == 0 or H * W == 0:
            return _decode(keys, B, H, W, depth.dtype)
        off = points_img.new_tensor(offset)
        xy, zz = _triangle_corners(points_img - off, depth, triangles)  # [B,F,3,2], [B,F,3]
        xy = xy.reshape(B * F_, 3, 2)
        zz = zz.reshape(B * F_, 3)
        x0, y0 = xy[:, 0, 0], xy[:, 0, 1]
        x1, y1 = xy[:, 1, 0], xy[:, 1, 1]
        x2, y2 = xy[:, 2, 0], xy[:, 2, 1]
        area2 = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)  # twice the signed area
        finite = torch.isfinite(xy).all(dim=(1, 2)) & torch.isfinite(zz).all(dim=1)
        ok = finite & (area2.abs() > 1e-12)
        safe_xy = torch.where(ok[:, None, None], xy, torch.zeros_like(xy))
        lo = torch.ceil(safe_xy.amin(dim=1)).to(torch.long)
        hi = torch.floor(safe_xy.amax(dim=1)).to(torch.long)
        lo[:, 0].clamp_(0, W)
        lo[:, 1].clamp_(0, H)
        hi[:, 0].clamp_(-1, W - 1)
        hi[:, 1].clamp_(-1, H - 1)
        bw = (hi[:, 0] - lo[:, 0] + 1).clamp_min(0)
        bh = (hi[:, 1] - lo[:, 1] + 1).clamp_min(0)
        counts = torch.where(ok, bw * bh, torch.zeros_like(bw))
        live = torch.nonzero(counts > 0).squeeze(1)
        if live.numel() == 0:
            return _decode(keys, B, H, W, depth.dtype)
        counts_live = counts[live]
        ends = torch.cumsum(counts_live, 0)
        total = int(ends[-1])
        # Chunk boundaries: indices into `live` where the cumulative count passes a multiple of the cap.
        n_chunks = max(1, -(-total // max_candidates))
        if n_chunks == 1:
            bounds = [0, live.numel()]
        else:
            marks = torch.arange(1, n_chunks, device=device, dtype=torch.long) * max_candidates
            cuts = torch.searchsorted(ends, marks, right=True).tolist()
            bounds = sorted(set([0] + cuts + [live.numel()]))
        for s, e in zip(bounds[:-1], bounds[1:]):
            if e <= s:
                continue
            idx = live[s:e]
            _splat_chunk(keys, idx, counts[idx], lo[idx], bw[idx], xy[idx], zz[idx], area2[idx], F_, H, W)
        return _decode(keys, B, H, W, depth.dtype)


def _splat_chunk(keys, idx, counts, lo, bw, xy, zz, area2, F_, H, W) -> None:
    """Enumerate the bbox pixels of the triangles ``idx`` (flat b*F + f) and amin their keys."""
    device = keys.device
    n = int(counts.sum())
    owner = torch.repeat_interleave(torch.arange(idx.numel(), device=device), counts, output_size=n)
    start = torch.cumsum(counts, 0) - counts
    # One gather per dtype: [lo_x, lo_y, box width, start, flat index] and the float geometry.
    ints = torch.stack((lo[:, 0], lo[:, 1], bw, start, idx), dim=1)[owner]
    geo = torch.cat((xy.reshape(-1, 6), zz, area2.unsqueeze(1)), dim=1)[owner]
    local = torch.arange(n, device=device) - ints[:, 3]
    w = ints[:, 2]
    px = ints[:, 0] + local % w
    py = ints[:, 1] + torch.div(local, w, rounding_mode="floor")
    fx = px.to(geo.dtype)
    fy = py.to(geo.dtype)
    x0, y0, x1, y1, x2, y2, z0, z1, z2, a = geo.unbind(1)
    # Barycentric weights from edge functions, normalized by the signed area.
    w0 = ((x1 - fx) * (y2 - fy) - (x2 - fx) * (y1 - fy)) / a
    w1 = ((x2 - fx) * (y0 - fy) - (x0 - fx) * (y2 - fy)) / a
    w2 = 1.0 - w0 - w1
    tol = -1e-6
    inside = (w0 >= tol) & (w1 >= tol) & (w2 >= tol)
    d = w0 * z0 + w1 * z1 + w2 * z2
    flat = ints[:, 4]
    b = torch.div(flat, F_, rounding_mode="floor")
    f = flat - b * F_
    pix = (b * H + py) * W + px
    key = (depth_to_key(d) << 32) | f
    keys.scatter_reduce_(0, pix[inside], key[inside], reduce="amin")


def _decode(keys: Tensor, B: int, H: int, W: int, dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
    empty = keys == _EMPTY
    face = torch.where(empty, torch.full_like(keys, -1), keys & _LOW32)
    dep = key_to_depth(keys >> 32).to(dtype)
    dep = torch.where(empty, torch.full_like(dep, float("inf")), dep)
    return dep.view(B, H, W), face.view(B, H, W)


def splat_depth(
    points_img: Tensor,
    depth: Tensor,
    triangles: Tensor,
    size: Tuple[int, int],
    samples_per_edge: int,
    offset: Tuple[float, float] = (0.0, 0.0),
) -> Tuple[Tensor, Tensor]:
    """A cheaper, approximate z-buffer: splat a barycentric grid of samples of every triangle.

    Each triangle contributes the (n+1)(n+2)/2 points with barycentric weights (i, j, k)/n,
    i + j + k = n = ``samples_per_edge``, written to their nearest pixel. Triangles larger than
    about n pixels on a side leave holes; use :func:`rasterize_depth` (exact) unless the mesh is
    fine relative to the pixel grid. Same arguments and returns as :func:`rasterize_depth`.
    """
    _check_mesh(points_img, depth, triangles)
    if samples_per_edge < 1:
        raise ValueError(f"samples_per_edge must be >= 1, got {samples_per_edge}")
    W, H = int(size[0]), int(size[1])
    B, F_ = points_img.shape[0], triangles.shape[0]
    device = points_img.device
    with torch.no_grad():
        keys = torch.full((B * H * W,), _EMPTY, dtype=torch.int64, device=device)
        if F_ == 0 or B == 0:
            return _decode(keys, B, H, W, depth.dtype)
        n = int(samples_per_edge)
        ij = [(i, j) for i in range(n + 1) for j in range(n + 1 - i)]
        bary = points_img.new_tensor([(i / n, j / n, (n - i - j) / n) for i, j in ij])  # [S, 3]
        xy, zz = _triangle_corners(points_img - points_img.new_tensor(offset), depth, triangles)
        pts = torch.einsum("sk,bfkc->bfsc", bary, xy)  # [B, F, S, 2]
        d = torch.einsum("sk,bfk->bfs", bary, zz)
        px = torch.round(pts[..., 0]).to(torch.long)
        py = torch.round(pts[..., 1]).to(torch.long)
        ok = (px >= 0) & (px < W) & (py >= 0) & (py < H) & torch.isfinite(d)
        b = torch.arange(B, device=device).view(B, 1, 1)
        f = torch.arange(F_, device=device).view(1, F_, 1)
        pix = (b * H + py.clamp(0, H - 1)) * W + px.clamp(0, W - 1)
        key = (depth_to_key(torch.nan_to_num(d)) << 32) | f.expand_as(pix)
        keys.scatter_reduce_(0, pix[ok], key[ok], reduce="amin")
        return _decode(keys, B, H, W, depth.dtype)
