"""Frontal orthographic z-buffer of a mesh (numpy): which vertices the front view sees."""
from __future__ import annotations

import numpy as np


def frontal_depth_buffer(vertices: np.ndarray, triangles: np.ndarray, pixel: float):
    """Rasterize the largest z per pixel of an orthographic view along -Z.

    Args:
        vertices: [V, 3] positions (+Z towards the viewer).
        triangles: [F, 3] indices.
        pixel: pixel size in model units.
    Returns:
        (zbuf [H, W] float64 with -inf where empty, origin [2] xy of pixel (0, 0)'s centre).
    """
    xy = vertices[:, :2]
    origin = xy.min(axis=0) - pixel
    grid = (xy - origin) / pixel  # continuous pixel coordinates, pixel centres at integers
    W, H = (np.ceil(grid.max(axis=0)).astype(int) + 2)
    zbuf = np.full(H * W, -np.inf)
    tri = np.asarray(triangles, dtype=np.int64)
    p0, p1, p2 = grid[tri[:, 0]], grid[tri[:, 1]], grid[tri[:, 2]]
    z0, z1, z2 = vertices[tri[:, 0], 2], vertices[tri[:, 1], 2], vertices[tri[:, 2], 2]
    lo = np.ceil(np.minimum(np.minimum(p0, p1), p2)).astype(np.int64)
    hi = np.floor(np.maximum(np.maximum(p0, p1), p2)).astype(np.int64)
    span = np.maximum(hi - lo + 1, 0)
    count = span[:, 0] * span[:, 1]
    t_id = np.repeat(np.arange(len(tri)), count)
    local = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    px = lo[t_id, 0] + local % np.maximum(span[t_id, 0], 1)
    py = lo[t_id, 1] + local // np.maximum(span[t_id, 0], 1)
    a, b, c = p0[t_id], p1[t_id], p2[t_id]
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    ok = np.abs(det) > 1e-12
    safe = np.where(ok, det, 1.0)
    w1 = ((px - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (py - a[:, 1])) / safe
    w2 = ((b[:, 0] - a[:, 0]) * (py - a[:, 1]) - (px - a[:, 0]) * (b[:, 1] - a[:, 1])) / safe
    w0 = 1.0 - w1 - w2
    eps = -1e-9
    inside = ok & (w0 >= eps) & (w1 >= eps) & (w2 >= eps)
    z = w0 * z0[t_id] + w1 * z1[t_id] + w2 * z2[t_id]
    np.maximum.at(zbuf, (py * W + px)[inside], z[inside])
    return zbuf.reshape(H, W), origin


def frontal_visible(vertices: np.ndarray, triangles: np.ndarray, pixel: float, tol: float) -> np.ndarray:
    """[V] bool: vertex is not hidden behind the mesh in the frontal orthographic view.

    A vertex counts as visible when its depth is within ``tol`` of the nearest surface among the
    (up to 3x3) pixels around it, so vertices on grazing surfaces stay visible.
    """
    zbuf, origin = frontal_depth_buffer(vertices, triangles, pixel)
    H, W = zbuf.shape
    g = np.rint((vertices[:, :2] - origin) / pixel).astype(np.int64)
    best = np.full(len(vertices), np.inf)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            x = np.clip(g[:, 0] + dx, 0, W - 1)
            y = np.clip(g[:, 1] + dy, 0, H - 1)
            z = zbuf[y, x]
            z = np.where(np.isfinite(z), z, np.inf)
            best = np.minimum(best, z)
    return vertices[:, 2] + tol >= np.where(np.isfinite(best), best, -np.inf)
