"""Part label maps from the MediaPipe 478-point face mesh (pure geometry, no image).

Each part is a closed polygon over mesh vertices of MediaPipe's canonical topology (the
vertex numbering is fixed by the model). A polygon corner is a vertex index or a fixed affine
combination of vertices (:data:`Corner`), so a boundary can sit between mesh rows.

* eyes: the eyelid margins (the visible eyeball between the lids);
* brows: the upper-edge vertex row joined with the lower-edge row, widened outward by
  ``brow_grow`` (the mesh rows lie inside the brow on thick brows);
* nose: bridge from the inner-eye level down the nasal side walls around the alae to the
  subnasale;
* lips: the outer lip contour and the inner (mouth opening) contour; the opening is label 12;
* skin: the face oval (it stops mid-forehead; :mod:`fitter.targets.skin_refine` extends it using
  the photo) minus the other parts.

Left/right are the person's own: MediaPipe's "left eye" vertices (263, 362, ...) are the person's
left, on the viewer's right in a frontal photo.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple, Union

import numpy as np

from fitter.targets import labels as L

#: A polygon corner: a vertex index, or {vertex: weight} with weights summing to 1.
Corner = Union[int, Dict[int, float]]

RIGHT_EYE: Tuple[Corner, ...] = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE: Tuple[Corner, ...] = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
#: brow rows, outer end to inner end
RIGHT_BROW_UPPER = (70, 63, 105, 66, 107)
RIGHT_BROW_LOWER = (46, 53, 52, 65, 55)
LEFT_BROW_UPPER = (300, 293, 334, 296, 336)
LEFT_BROW_LOWER = (276, 283, 282, 295, 285)
#: the row below each brow (upper eyelid fold), outer to inner: bounds the brow from below
RIGHT_BROW_FLOOR = (225, 224, 223, 222, 221)
LEFT_BROW_FLOOR = (445, 444, 443, 442, 441)

NOSE: Tuple[Corner, ...] = (
    {193: 1.0, 8: 0.6, 168: -0.6}, 193, 174, 198, 209, 49, 129, 64, 240, 98, 97, 2,
    326, 327, 460, 294, 358, 279, 429, 420, 399, 417, {417: 1.0, 8: 0.6, 168: -0.6},
)
LIPS_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER = (291, 375, 321, 405, 314, 17, 84, 181, 91, 146, 61)
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78)
UP_LIP: Tuple[Corner, ...] = LIPS_OUTER_UPPER + tuple(reversed(LIPS_INNER_UPPER))
DOWN_LIP: Tuple[Corner, ...] = LIPS_OUTER_LOWER + tuple(reversed(LIPS_INNER_LOWER))
INNER_MOUTH: Tuple[Corner, ...] = LIPS_INNER_UPPER + LIPS_INNER_LOWER[1:-1]
#: face silhouette loop, starting at the forehead top (vertex 10), going over the person's left.
FACE_OVAL: Tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)


def corner_points(mesh: np.ndarray, corners: Sequence[Corner]) -> np.ndarray:
    """[K, 2] positions of polygon corners on a mesh [N, >=2]."""
    out = np.empty((len(corners), 2), dtype=np.float64)
    for k, c in enumerate(corners):
        if isinstance(c, dict):
            out[k] = sum(w * mesh[i, :2] for i, w in c.items())
        else:
            out[k] = mesh[c, :2]
    return out


def grow_polygon(poly: np.ndarray, amount: float) -> np.ndarray:
    """Move each corner of a closed polygon [K, 2] away from its centroid by ``amount`` pixels."""
    c = poly.mean(0)
    d = poly - c
    n = np.linalg.norm(d, axis=1, keepdims=True)
    return poly + d / np.maximum(n, 1e-9) * amount


def brow_polygon(mesh: np.ndarray, upper: Sequence[int], lower: Sequence[int], grow: float) -> np.ndarray:
    """[10, 2] brow polygon from its upper and lower vertex rows, each row pushed outward.

    ``grow`` is a fraction of the local brow height (upper-to-lower row distance): the upper row
    moves up and the lower row moves down by ``grow`` times that height.
    """
    up = mesh[list(upper), :2]
    lo = mesh[list(lower), :2]
    d = up - lo
    return np.concatenate([up + grow * d, (lo - grow * d)[::-1]], axis=0)


def fill_polygon(label_map: np.ndarray, poly: np.ndarray, value: int) -> None:
    """Rasterize a closed polygon [K, 2] (pixel centres at integers) into ``label_map`` in place."""
    import cv2

    if poly.shape[0] < 3 or not np.all(np.isfinite(poly)):
        return
    pts = np.round(poly * 16.0).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(label_map, [pts], int(value), lineType=cv2.LINE_8, shift=4)


def mesh_part_polygons(mesh: np.ndarray, brow_grow: float = 0.25, eye_shrink: float = 0.01) -> Dict[int, np.ndarray]:
    """Part polygons of one face, keyed by label, in the mesh's pixel frame.

    Args:
        mesh: [478, >=2] (or [468, >=2]) MediaPipe face mesh points, pixels.
        brow_grow: brow widening, fraction of the brow height on each side.
        eye_shrink: eye polygons pulled in by this fraction of the inter-ocular distance (the lid
            vertices sit on the lid margin, slightly outside the visible eyeball).
    Returns:
        {label: [K, 2] polygon}: skin (face oval), nose, brows, eyes, lips and inner mouth.
    """
    shrink = -eye_shrink * float(np.linalg.norm(mesh[263, :2] - mesh[33, :2]))
    return {
        L.SKIN: corner_points(mesh, FACE_OVAL),
        L.NOSE: corner_points(mesh, NOSE),
        L.RIGHT_BROW: brow_polygon(mesh, RIGHT_BROW_UPPER, RIGHT_BROW_LOWER, brow_grow),
        L.LEFT_BROW: brow_polygon(mesh, LEFT_BROW_UPPER, LEFT_BROW_LOWER, brow_grow),
        L.RIGHT_EYE: grow_polygon(corner_points(mesh, RIGHT_EYE), shrink),
        L.LEFT_EYE: grow_polygon(corner_points(mesh, LEFT_EYE), shrink),
        L.UP_LIP: corner_points(mesh, UP_LIP),
        L.DOWN_LIP: corner_points(mesh, DOWN_LIP),
        L.INNER_MOUTH: corner_points(mesh, INNER_MOUTH),
    }


#: the vertices whose mean depth orders the painting of the inner parts
_DEPTH_VERTICES = {
    L.NOSE: (1, 4, 5, 195, 197, 6, 98, 327), L.RIGHT_BROW: RIGHT_BROW_UPPER, L.LEFT_BROW: LEFT_BROW_UPPER,
    L.RIGHT_EYE: (33, 133, 159, 145), L.LEFT_EYE: (263, 362, 386, 374), L.UP_LIP: (0, 61, 291),
    L.DOWN_LIP: (17, 61, 291),
}


def paint_order(mesh: np.ndarray) -> Tuple[int, ...]:
    """Labels in painting order: skin, then the inner parts farthest first (so on a turned head
    the nose hides the far eye), then the inner mouth. Uses mesh depth (column 2; smaller = nearer)
    when present, else a fixed frontal order."""
    inner = (L.RIGHT_BROW, L.LEFT_BROW, L.RIGHT_EYE, L.LEFT_EYE, L.NOSE, L.UP_LIP, L.DOWN_LIP)
    if mesh.shape[1] >= 3:
        depth = {lab: float(np.mean(mesh[list(_DEPTH_VERTICES[lab]), 2])) for lab in inner}
        inner = tuple(sorted(inner, key=lambda lab: -depth[lab]))
    return (L.SKIN,) + inner + (L.INNER_MOUTH,)


def rasterize_mesh_parts(mesh: np.ndarray, size: Tuple[int, int], brow_grow: float = 0.25,
                         eye_shrink: float = 0.01) -> np.ndarray:
    """[H, W] uint8 label map (see :mod:`fitter.targets.labels`) of the mesh's parts.

    Args:
        mesh: [478, >=2] mesh points in pixels of the output frame (x, y[, depth]).
        size: (width, height) of the output.
        brow_grow, eye_shrink: see :func:`mesh_part_polygons`.
    """
    W, H = size
    out = np.zeros((H, W), dtype=np.uint8)
    polys = mesh_part_polygons(mesh, brow_grow=brow_grow, eye_shrink=eye_shrink)
    for lab in paint_order(mesh):
        fill_polygon(out, polys[lab], lab)
    return out
