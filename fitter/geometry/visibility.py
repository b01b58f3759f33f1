"""Which projected vertices does the camera see? (self-occlusion by z-buffer)

A vertex is visible when nothing of the mesh lies in front of it along its pixel's ray: its depth
is at most the nearest surface depth at its pixel plus a tolerance. The nearest surface comes from
:func:`fitter.geometry.zbuffer.rasterize_depth` (exact pixel coverage) or, with
``samples_per_edge``, from the cheaper barycentric splatting of :func:`splat_depth`.

To avoid the half-pixel error between a vertex and its pixel centre on sloped surfaces, the
surface depth is also evaluated at the vertex's exact sub-pixel position on the plane of the
nearest triangle at that pixel; the vertex is visible if it is within ``tol`` of either estimate,
or if it is a corner of that triangle.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from fitter.geometry.zbuffer import _check_mesh, rasterize_depth, splat_depth


def zbuffer_visibility(
    points_img: Tensor,
    depth: Tensor,
    triangles: Tensor,
    size: Tuple[int, int],
    tol: Optional[float] = None,
    samples_per_edge: Optional[int] = None,
    margin: float = 0.1,
    return_faces: bool = False,
) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """Visibility of every vertex under self-occlusion.

    Args:
        points_img: [B, V, 2] projected vertices, pixels (x, y) of a W×H image.
        depth: [B, V] camera-space depth of each vertex (z, model units; smaller = nearer).
        triangles: [F, 3] mesh triangles (vertices not in any triangle are never occluders).
        size: (W, H) image size in pixels; the buffer has one cell per pixel.
        tol: depth tolerance in model units; None = 1% of each mesh's depth extent.
        samples_per_edge: None (default) for exact per-pixel coverage; an int n splats
            (n+1)(n+2)/2 barycentric samples per triangle instead (faster, holes on big triangles).
        margin: the buffer extends this fraction of max(W, H) beyond each image border, so
            vertices just outside the image still get occlusion tested. Vertices outside the
            extended buffer are reported visible (nothing is known to hide them).
        return_faces: also return the z-buffer's nearest-triangle map of the image itself.
    Returns:
        [B, V] bool, True = visible; with ``return_faces`` also [B, H, W] long, the nearest
        triangle at each pixel centre (-1 = none), the same map as
        :func:`fitter.geometry.zbuffer.rasterize_depth` gives (so label maps come free).
        Computed under ``torch.no_grad``.
    """
    _check_mesh(points_img, depth, triangles)
    W, H = int(size[0]), int(size[1])
    if W <= 0 or H <= 0:
        raise ValueError(f"size must be positive (W, H), got {size}")
    with torch.no_grad():
        B, V = depth.shape
        m = int(round(margin * max(W, H)))
        bw, bh = W + 2 * m, H + 2 * m
        offset = (-float(m), -float(m))
        if samples_per_edge is None:
            zbuf, face = rasterize_depth(points_img, depth, triangles, (bw, bh), offset=offset)
        else:
            zbuf, face = splat_depth(points_img, depth, triangles, (bw, bh), samples_per_edge, offset=offset)
        if tol is None:
            finite = torch.isfinite(depth)
            big = torch.where(finite, depth, torch.full_like(depth, -float("inf"))).amax(dim=1)
            small = torch.where(finite, depth, torch.full_like(depth, float("inf"))).amin(dim=1)
            tol_b = (0.01 * (big - small)).nan_to_num(0.0).clamp_min(0.0).unsqueeze(1)  # [B, 1]
        else:
            tol_b = torch.full((B, 1), float(tol), device=depth.device, dtype=depth.dtype)

        px = torch.round(points_img[..., 0] + m)
        py = torch.round(points_img[..., 1] + m)
        inside = (px >= 0) & (px < bw) & (py >= 0) & (py < bh) & torch.isfinite(px) & torch.isfinite(py)
        pxl = torch.where(inside, px, torch.zeros_like(px)).to(torch.long)
        pyl = torch.where(inside, py, torch.zeros_like(py)).to(torch.long)
        flat = pyl * bw + pxl  # [B, V]
        z_pix = zbuf.reshape(B, -1).gather(1, flat)
        f_pix = face.reshape(B, -1).gather(1, flat)
        covered = f_pix >= 0

        # Depth of the nearest triangle's plane at the vertex's exact position.
        tri = triangles.to(device=depth.device, dtype=torch.long)
        f_safe = f_pix.clamp_min(0)
        corners = tri[f_safe]  # [B, V, 3]
        bidx = torch.arange(B, device=depth.device).view(B, 1, 1)
        cxy = points_img[bidx, corners]  # [B, V, 3, 2]
        cz = depth[bidx, corners]  # [B, V, 3]
        # Clamped to the triangle's own depth range: beyond it the plane is a wild extrapolation.
        z_plane = torch.minimum(torch.maximum(_plane_depth(cxy, cz, points_img), cz.amin(-1)), cz.amax(-1))
        z_surface = torch.maximum(z_pix, torch.nan_to_num(z_plane, nan=-float("inf")))
        own = (corners == torch.arange(V, device=depth.device).view(1, V, 1)).any(dim=-1)
        visible = (depth <= z_surface + tol_b) | own | ~covered | ~inside
        visible &= torch.isfinite(depth)
        if return_faces:
            return visible, face[:, m : m + H, m : m + W]
        return visible


def _plane_depth(cxy: Tensor, cz: Tensor, p: Tensor) -> Tensor:
    """Depth at p [..., 2] on the plane through triangle corners cxy [..., 3, 2] with depths cz [..., 3]."""
    x0, y0 = cxy[..., 0, 0], cxy[..., 0, 1]
    x1, y1 = cxy[..., 1, 0], cxy[..., 1, 1]
    x2, y2 = cxy[..., 2, 0], cxy[..., 2, 1]
    area2 = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    px, py = p[..., 0], p[..., 1]
    w0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) / area2
    w1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) / area2
    w2 = 1.0 - w0 - w1
    return w0 * cz[..., 0] + w1 * cz[..., 1] + w2 * cz[..., 2]
