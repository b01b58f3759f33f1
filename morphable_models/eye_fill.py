"""Fill mesh openings (ICT-FaceKit's eye holes) with virtual points that move with the eyelids.

An opening is a closed boundary loop with two corners (the eye corners). The loop splits into an
upper arc and a lower arc. Both arcs are parametrized by normalized arc length t in [0, 1] on the
neutral mesh; at every t where either arc has a vertex we pair the upper point U(t) with the lower
point L(t) (each a vertex or a point on a rim edge) and add rows of points

    P(t, s) = (1 - s) U(t) + s L(t),   s in (0, 1).

Every virtual point is therefore a fixed convex combination of at most four rim vertices. The
weights are computed once on the neutral mesh and applied to the mean and to every basis vector, so
a virtual point moves linearly (and differentiably) with all coefficients, and when a blink brings
the lids together (U(t) = L(t)) the whole fill collapses onto the lid line.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

#: most rim vertices one virtual point depends on (two on each arc).
MAX_WEIGHTS = 4


@dataclass(frozen=True)
class OpeningFill:
    """Virtual points and triangles that cover one opening.

    Attributes:
        rim: [N] int64 loop vertices (mesh indices) in loop order.
        weight_index: [P, 4] int64 mesh vertex indices of each virtual point's combination.
        weight: [P, 4] float64 convex weights (rows sum to 1; unused slots have weight 0).
        triangles: [T, 3] int64; indices < ``base`` are mesh vertices, ``base + k`` is virtual
            point k of this fill.
        base: index the first virtual point of this fill will have in the model.
    """

    rim: np.ndarray
    weight_index: np.ndarray
    weight: np.ndarray
    triangles: np.ndarray
    base: int

    @property
    def num_points(self) -> int:
        return int(self.weight.shape[0])

    @property
    def point_indices(self) -> np.ndarray:
        """[P] model indices of the virtual points."""
        return np.arange(self.base, self.base + self.num_points, dtype=np.int64)


def split_loop(loop: np.ndarray, corner_a: int, corner_b: int) -> Tuple[np.ndarray, np.ndarray]:
    """Split a closed loop at two of its vertices into two arcs, both running from a to b.

    Args:
        loop: [N] vertex indices in loop order.
        corner_a, corner_b: positions (0..N-1) in ``loop`` of the two corners, a != b.
    Returns:
        (arc1, arc2): vertex-index arrays from loop[a] to loop[b] (both ends included), arc1 following
        the loop order and arc2 the reverse order.
    """
    n = len(loop)
    if corner_a == corner_b:
        raise ValueError("opening corners must differ")
    fwd = [loop[(corner_a + k) % n] for k in range((corner_b - corner_a) % n + 1)]
    bwd = [loop[(corner_a - k) % n] for k in range((corner_a - corner_b) % n + 1)]
    return np.asarray(fwd, dtype=np.int64), np.asarray(bwd, dtype=np.int64)


def _arc_parameters(points: np.ndarray) -> np.ndarray:
    """Normalized cumulative arc length [N] in [0, 1] of a polyline [N, D]."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    return cum / max(cum[-1], 1e-12)


def _point_on_arc(arc: np.ndarray, params: np.ndarray, t: float) -> Tuple[Tuple[int, int], Tuple[float, float]]:
    """The two arc vertices and their weights that interpolate the arc at parameter t."""
    k = int(np.clip(np.searchsorted(params, t, side="right") - 1, 0, len(arc) - 2))
    span = params[k + 1] - params[k]
    u = 0.0 if span <= 0 else float(np.clip((t - params[k]) / span, 0.0, 1.0))
    return (int(arc[k]), int(arc[k + 1])), (1.0 - u, u)


def fill_opening(vertices: np.ndarray, upper: np.ndarray, lower: np.ndarray, base: int,
                 rows: int = 4, snap: float = 1e-9) -> OpeningFill:
    """Virtual points and triangles covering the opening bounded by two arcs.

    Args:
        vertices: [V, 3] neutral mesh vertices (weights are computed on these).
        upper, lower: vertex-index arcs that share their first and last vertex (the corners).
        base: model index of the first virtual point created here.
        rows: number of bands between the arcs (rows - 1 interior rows of virtual points).
        snap: arc parameters closer than this merge into one column.
    Returns:
        An :class:`OpeningFill`; the rim is ``upper`` followed by ``lower`` reversed (without the
        repeated corners).
    """
    if upper[0] != lower[0] or upper[-1] != lower[-1]:
        raise ValueError("arcs must share both corners")
    tu = _arc_parameters(vertices[upper])
    tl = _arc_parameters(vertices[lower])
    ts = np.unique(np.concatenate([tu[1:-1], tl[1:-1]]))
    cols = [ts[0]] if len(ts) else []
    for t in ts[1:]:
        if t - cols[-1] > snap:
            cols.append(t)

    w_idx: List[List[int]] = []
    w_val: List[List[float]] = []

    def add_point(idx: List[int], val: List[float]) -> int:
        # merge duplicate vertex references and drop zero weights, then pad to MAX_WEIGHTS
        acc = {}
        for i, v in zip(idx, val):
            if v > 0:
                acc[i] = acc.get(i, 0.0) + v
        if len(acc) == 1:
            (only,) = acc
            return only  # the point is a mesh vertex: reference it directly
        items = sorted(acc.items())
        w_idx.append([i for i, _ in items] + [items[0][0]] * (MAX_WEIGHTS - len(items)))
        w_val.append([v for _, v in items] + [0.0] * (MAX_WEIGHTS - len(items)))
        return base + len(w_idx) - 1

    # grid[c][r]: model index of the point at column c, row r (r = 0 upper rim ... rows = lower rim)
    grid: List[List[int]] = []
    for t in cols:
        (ua, ub), (uwa, uwb) = _point_on_arc(upper, tu, t)
        (la, lb), (lwa, lwb) = _point_on_arc(lower, tl, t)
        column = []
        for r in range(rows + 1):
            s = r / rows
            column.append(add_point([ua, ub, la, lb],
                                    [(1 - s) * uwa, (1 - s) * uwb, s * lwa, s * lwb]))
        grid.append(column)

    tris: List[Tuple[int, int, int]] = []
    a, b = int(upper[0]), int(upper[-1])
    if grid:
        first, last = grid[0], grid[-1]
        for r in range(rows):
            tris.append((a, first[r + 1], first[r]))
            tris.append((b, last[r], last[r + 1]))
        for c in range(len(grid) - 1):
            p, q = grid[c], grid[c + 1]
            for r in range(rows):
                tris.append((p[r], p[r + 1], q[r + 1]))
                tris.append((p[r], q[r + 1], q[r]))
    tris_arr = np.asarray(tris, dtype=np.int64).reshape(-1, 3)
    # drop triangles made degenerate by repeated references (corners, rim vertices)
    keep = (tris_arr[:, 0] != tris_arr[:, 1]) & (tris_arr[:, 1] != tris_arr[:, 2]) & (tris_arr[:, 0] != tris_arr[:, 2])
    rim = np.concatenate([upper, lower[1:-1][::-1]])
    return OpeningFill(
        rim=rim,
        weight_index=np.asarray(w_idx, dtype=np.int64).reshape(-1, MAX_WEIGHTS),
        weight=np.asarray(w_val, dtype=np.float64).reshape(-1, MAX_WEIGHTS),
        triangles=tris_arr[keep],
        base=base,
    )


def apply_weights(points: np.ndarray, weight_index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Virtual points of any per-vertex field.

    Args:
        points: [..., V, 3] mesh vertices (a mean shape or a stack of basis vectors).
        weight_index, weight: [P, 4] from :class:`OpeningFill` (possibly concatenated).
    Returns:
        [..., P, 3] = sum_k weight[:, k] * points[..., weight_index[:, k], :].
    """
    gathered = points[..., weight_index, :]  # [..., P, 4, 3]
    return np.einsum("...pkc,pk->...pc", gathered, weight.astype(points.dtype))
