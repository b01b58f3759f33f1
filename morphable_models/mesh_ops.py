"""Topology helper on triangle meshes (numpy, no state): boundary loops."""
from __future__ import annotations

from typing import Dict, List

import numpy as np


def boundary_loops(triangles: np.ndarray) -> List[np.ndarray]:
    """Closed loops of boundary edges (edges used by exactly one triangle).

    Args:
        triangles: [F, 3] int vertex indices.
    Returns:
        list of int64 vertex-index arrays, one per loop, each ordered along the loop (the first
        vertex is not repeated), following the triangles' winding; sorted by the smallest vertex
        index so the result is deterministic. Non-manifold boundary vertices (two outgoing boundary
        edges) are walked greedily by the lowest next index.
    """
    tri = np.asarray(triangles, dtype=np.int64)
    directed = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    undirected = np.sort(directed, axis=1)
    _, inverse, counts = np.unique(undirected, axis=0, return_inverse=True, return_counts=True)
    border = directed[counts[inverse.reshape(-1)] == 1]
    nxt: Dict[int, List[int]] = {}
    for a, b in border.tolist():
        nxt.setdefault(a, []).append(b)
    for k in nxt:
        nxt[k].sort()
    loops = []
    for start in sorted(nxt):
        if not nxt.get(start):
            continue
        loop = [start]
        cur = start
        while True:
            cand = nxt.get(cur)
            if not cand:
                break
            b = cand.pop(0)
            if b == start:
                break
            loop.append(b)
            cur = b
        if len(loop) >= 3:
            loops.append(np.asarray(loop, dtype=np.int64))
    return sorted(loops, key=lambda l: int(l.min()))
