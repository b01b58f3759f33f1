"""2D polygon helpers for part annotation on a frontal projection (numpy, pure)."""
from __future__ import annotations

import numpy as np


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test.

    Args:
        points: [N, 2] query points.
        polygon: [M, 2] vertices of a closed polygon (first vertex not repeated).
    Returns:
        [N] bool, True inside (points exactly on an edge may go either way).
    """
    pts = np.asarray(points, dtype=np.float64)
    poly = np.asarray(polygon, dtype=np.float64)
    x, y = pts[:, 0:1], pts[:, 1:2]  # [N, 1]
    x0, y0 = poly[:, 0][None], poly[:, 1][None]  # [1, M]
    x1, y1 = np.roll(poly[:, 0], -1)[None], np.roll(poly[:, 1], -1)[None]
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    hits = crosses & (x < x_at)
    return (hits.sum(axis=1) % 2) == 1


def polyline_band(line: np.ndarray, above: np.ndarray, below: np.ndarray) -> np.ndarray:
    """Polygon around a left-to-right polyline, offset vertically.

    Args:
        line: [K, 2] polyline points.
        above, below: [K] offsets (>= 0) of the band's upper and lower edge at each point.
    Returns:
        [2K, 2] polygon: the upper edge left to right, then the lower edge right to left.
    """
    up = line + np.stack([np.zeros_like(above), above], axis=1)
    down = line - np.stack([np.zeros_like(below), below], axis=1)
    return np.concatenate([up, down[::-1]])


def offset_outward(polygon: np.ndarray, distance: float) -> np.ndarray:
    """Move each vertex of a star-shaped polygon ``distance`` away from its centroid ([M,2])."""
    c = polygon.mean(axis=0, keepdims=True)
    d = polygon - c
    n = np.linalg.norm(d, axis=1, keepdims=True)
    return polygon + d / np.maximum(n, 1e-12) * distance


def polygon_area(polygon: np.ndarray) -> float:
    """Unsigned shoelace area of a simple polygon [M, 2]."""
    x, y = polygon[:, 0], polygon[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)
