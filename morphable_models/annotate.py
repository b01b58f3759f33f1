"""Turn a bare mesh model (mean, bases, triangles, 68 landmarks) into the project's annotated model.

Shared by the converters of meshes that come without part annotation (ICT-FaceKit, SFM):
finds the eye openings and the mouth hole among the mesh's boundary loops, fills the eye openings
with virtual points (:mod:`morphable_models.eye_fill`), annotates the 8 parts
(:mod:`morphable_models.parts`) and derives contour lines (:mod:`morphable_models.contours`).
All on the neutral mean shape, deterministically.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from morphable_models.contours import contour_candidates
from morphable_models.eye_fill import OpeningFill, apply_weights, fill_opening, split_loop
from morphable_models.mesh_ops import boundary_loops
from morphable_models.parts import INNER_LIPS, LEFT_EYE, RIGHT_EYE, Openings, PartRules, annotate_parts, inter_ocular
from morphable_models.polygons import polygon_area


@dataclass(frozen=True)
class MeshAnnotation:
    """Everything the annotation adds to a mesh model.

    Attributes:
        weight_index / weight: [P, 4] virtual points as convex combinations of mesh vertices
            (point V + k is row k).
        hole_triangles: [Fh, 3] int64 triangles over the filled openings.
        parts: part name -> int64 indices (mesh vertices and virtual points).
        contour_candidates: [17, L] int64, -1 padded.
    """

    weight_index: np.ndarray
    weight: np.ndarray
    hole_triangles: np.ndarray
    parts: Dict[str, np.ndarray]
    contour_candidates: np.ndarray

    @property
    def num_virtual(self) -> int:
        return int(self.weight.shape[0])


def find_opening(loops: List[np.ndarray], vertices: np.ndarray, guide: np.ndarray,
                 max_distance: float, max_extent: float) -> Optional[np.ndarray]:
    """The boundary loop whose frontal centroid is nearest to ``guide`` [2], if near and small enough.

    Args:
        loops: boundary loops (vertex index arrays).
        guide: [2] xy where the opening should be (e.g. the mean of the eye landmarks).
        max_distance: largest accepted distance of the loop centroid from ``guide``.
        max_extent: largest accepted xy extent of the loop (keeps the outer border out).
    """
    best, best_d = None, np.inf
    for loop in loops:
        p = vertices[loop, :2]
        d = float(np.linalg.norm(p.mean(axis=0) - guide))
        if d < best_d and d <= max_distance and float(np.ptp(p, axis=0).max()) <= max_extent:
            best, best_d = loop, d
    return best


def lid_margin_loop(vertices: np.ndarray, triangles: np.ndarray, rim: np.ndarray, guide: np.ndarray,
                    closing: Optional[np.ndarray] = None, max_rings: int = 5) -> Tuple[np.ndarray, np.ndarray]:
    """The ring around an eye hole that best plays the visible eye opening (the lid margin).

    A mesh's hole rim can sit behind the eyelid margin (ICT-FaceKit: the lids overhang the rim,
    which stays open when the eye blinks). Ring k is the boundary loop left after removing the
    triangles of rings 0..k-1 around the hole. With ``closing`` (the per-vertex displacement of an
    eye-closing expression) the ring whose frontal area shrinks most under it is chosen; without,
    the ring with the smallest frontal area.

    Args:
        rim: [N] the hole's boundary loop.
        guide: [2] xy of the eye centre (to pick the loop around this eye).
        closing: [V, 3] displacement of the closing expression, or None.
    Returns:
        (loop [M] in loop order, inner [K] vertices of the rings inside it, which the opening covers).
    """
    inner = np.zeros(len(vertices), dtype=bool)
    loop = rim
    best = (np.inf, rim, np.zeros(0, dtype=np.int64))
    size = float(np.ptp(vertices[rim, :2], axis=0).max())
    for k in range(max_rings + 1):
        if k > 0:
            inner[loop] = True
            keep = ~inner[triangles].any(axis=1)
            found = find_opening(boundary_loops(triangles[keep]), vertices, guide, 0.5 * size, 2.0 * size)
            if found is None:
                break
            loop = found
        area = polygon_area(vertices[loop, :2])
        score = area if closing is None else polygon_area((vertices + closing)[loop, :2]) / max(area, 1e-12)
        if score < best[0]:
            best = (score, loop, np.flatnonzero(inner))
    return best[1], best[2]


def loop_arcs(loop: np.ndarray, vertices: np.ndarray, corner_a: np.ndarray,
              corner_b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Split an opening's loop at the vertices nearest (xy) to two corner points.

    Returns:
        (upper, lower) arcs from corner a to corner b, ``upper`` having the larger mean y.
    """
    p = vertices[loop, :2]
    ia = int(np.argmin(np.linalg.norm(p - corner_a[:2], axis=1)))
    ib = int(np.argmin(np.linalg.norm(p - corner_b[:2], axis=1)))
    arc1, arc2 = split_loop(loop, ia, ib)
    if vertices[arc1[1:-1], 1].mean() >= vertices[arc2[1:-1], 1].mean():
        return arc1, arc2
    return arc2, arc1


def orient_towards_viewer(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Reorder triangles so their normals have z >= 0 on ``points`` (frontal-facing fills)."""
    if len(triangles) == 0:
        return triangles
    a, b, c = points[triangles[:, 0]], points[triangles[:, 1]], points[triangles[:, 2]]
    nz = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    out = triangles.copy()
    flip = nz < 0
    out[flip] = out[flip][:, [0, 2, 1]]
    return out


def annotate_mesh(vertices: np.ndarray, triangles: np.ndarray, landmark_index: np.ndarray,
                  region: Optional[np.ndarray] = None, fill_rows: int = 4,
                  eye_closing: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                  rules: PartRules = PartRules()) -> MeshAnnotation:
    """Openings, virtual fill points, parts and contour lines of a neutral mesh.

    Args:
        vertices: [V, 3] neutral mean shape in project conventions.
        triangles: [F, 3] mesh triangles.
        landmark_index: [68] iBUG landmark vertices.
        region: [V] bool face-area mask (None = all vertices).
        fill_rows: bands of virtual points across an eye opening.
        eye_closing: ([V, 3], [V, 3]) displacements that close the right / left eye (e.g. the
            eyeBlink blendshapes), used to find the lid margin around each eye hole.
    """
    V = len(vertices)
    region = np.ones(V, dtype=bool) if region is None else region
    lm = vertices[landmark_index]
    iod = inter_ocular(lm)
    loops = boundary_loops(triangles)

    fills: List[OpeningFill] = []
    eye_sets: List[Optional[np.ndarray]] = []
    hidden: List[np.ndarray] = []
    for side, group in enumerate((RIGHT_EYE, LEFT_EYE)):
        guide = lm[group, :2].mean(axis=0)
        rim = find_opening(loops, vertices, guide, 0.1 * iod, 0.5 * iod)
        if rim is None:
            eye_sets.append(None)
            continue
        closing = None if eye_closing is None else eye_closing[side]
        loop, inside = lid_margin_loop(vertices, triangles, rim, guide, closing)
        hidden.append(inside)
        outer, inner = (group[0], group[3])
        upper, lower = loop_arcs(loop, vertices, lm[outer], lm[inner])
        base = V + sum(f.num_points for f in fills)
        fill = fill_opening(vertices, upper, lower, base=base, rows=fill_rows)
        fills.append(fill)
        eye_sets.append(np.concatenate([fill.rim, fill.point_indices]))

    mouth = find_opening(loops, vertices, lm[INNER_LIPS, :2].mean(axis=0), 0.15 * iod, 0.8 * iod)
    mouth_upper = mouth_lower = None
    if mouth is not None:
        mouth_upper, mouth_lower = loop_arcs(mouth, vertices, lm[60], lm[64])

    if fills:
        weight_index = np.concatenate([f.weight_index for f in fills])
        weight = np.concatenate([f.weight for f in fills])
        hole = np.concatenate([f.triangles for f in fills])
    else:
        weight_index = np.zeros((0, 4), dtype=np.int64)
        weight = np.zeros((0, 4))
        hole = np.zeros((0, 3), dtype=np.int64)
    all_points = np.concatenate([vertices, apply_weights(vertices, weight_index, weight)])
    hole = orient_towards_viewer(all_points, hole)
    openings = Openings(right_eye=eye_sets[0], left_eye=eye_sets[1], mouth_upper=mouth_upper,
                        mouth_lower=mouth_lower, hidden=np.concatenate(hidden) if hidden else None)
    parts = annotate_parts(vertices, triangles, landmark_index, region, openings, num_points=len(all_points), rules=rules)
    contours = contour_candidates(vertices, landmark_index, parts["skin"], rules=rules)
    return MeshAnnotation(weight_index=weight_index, weight=weight, hole_triangles=hole, parts=parts,
                          contour_candidates=contours)
