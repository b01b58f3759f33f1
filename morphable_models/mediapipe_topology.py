"""MediaPipe's face mesh as polygons of the face parts: the one table of which mesh points outline
each part, shared by the front end (:mod:`fitter.targets.mesh_parts` rasterizes them on a photo)
and by the model (:mod:`morphable_models.frontend_parts` draws the same polygons on the model's
surface through its table of MediaPipe's points), so that both sides label a part the same way.

Vertex numbers are MediaPipe's canonical face mesh (468 points, 478 with the irises). A polygon
corner is a vertex index or a fixed affine combination of vertices (:data:`Corner`), so that a
boundary can sit between mesh rows. Left/right are the person's own: MediaPipe's "left eye"
vertices (263, 362, ...) are the person's left, on the viewer's right in a frontal photo.

* eyes: the eyelid margins (the visible eyeball between the lids);
* brows: the upper-edge vertex row joined with the lower-edge row, widened by :data:`BROW_GROW`
  (the mesh rows lie inside the brow on thick brows);
* nose: bridge from the inner-eye level down the nasal side walls around the alae to the
  subnasale;
* lips: the outer lip contour and the inner (mouth opening) contour;
* face oval: the silhouette loop (it stops mid-forehead).

Pure numpy; positions are [N, >=2] arrays indexed by mesh vertex (any 2D frame: pixels, or a
model's frontal projection).
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple, Union

import numpy as np

#: brow widening: the upper row moves up and the lower row down by this fraction of the local brow
#: height (the front end's default, and what the model's drawn brows use)
BROW_GROW = 0.25
#: eye polygons pulled in by this fraction of the outer eye-corner distance (vertices 33-263): the lid
#: points sit on the lid margin, slightly outside the visible eyeball (the front end's default)
EYE_SHRINK = 0.01

#: A polygon corner: a vertex index, or {vertex: weight} with weights summing to 1.
Corner = Union[int, Dict[int, float]]

RIGHT_EYE: Tuple[Corner, ...] = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE: Tuple[Corner, ...] = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
#: brow rows, outer end to inner end
RIGHT_BROW_UPPER = (70, 63, 105, 66, 107)
RIGHT_BROW_LOWER = (46, 53, 52, 65, 55)
LEFT_BROW_UPPER = (300, 293, 334, 296, 336)
LEFT_BROW_LOWER = (276, 283, 282, 295, 285)

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
    """Move each corner of a closed polygon [K, 2] away from its centroid by ``amount`` (its units; < 0 pulls in)."""
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


def eye_polygons(mesh: np.ndarray, shrink: float = EYE_SHRINK) -> Tuple[np.ndarray, np.ndarray]:
    """(right, left) eye polygons [16, 2], each pulled in by ``shrink`` of the outer-corner distance."""
    amount = -shrink * float(np.linalg.norm(mesh[263, :2] - mesh[33, :2]))
    return grow_polygon(corner_points(mesh, RIGHT_EYE), amount), grow_polygon(corner_points(mesh, LEFT_EYE), amount)


def part_polygons(mesh: np.ndarray, brow_grow: float = BROW_GROW,
                  eye_shrink: float = EYE_SHRINK) -> Dict[str, np.ndarray]:
    """Every part's polygon [K, 2] from mesh points [N, >=2] (pixels, or a model's frontal projection).

    Keys: the 8 part names of :data:`morphable_models.model.PART_NAMES` (``skin`` is the whole face
    oval, before the other parts are cut out of it) and ``mouth``, the opening between the inner lip
    contours. A corner at a point the mesh lacks (NaN) makes its polygon NaN there.
    """
    right_eye, left_eye = eye_polygons(mesh, eye_shrink)
    return {
        "right_eye": right_eye,
        "left_eye": left_eye,
        "right_brow": brow_polygon(mesh, RIGHT_BROW_UPPER, RIGHT_BROW_LOWER, brow_grow),
        "left_brow": brow_polygon(mesh, LEFT_BROW_UPPER, LEFT_BROW_LOWER, brow_grow),
        "nose": corner_points(mesh, NOSE),
        "up_lip": corner_points(mesh, UP_LIP),
        "down_lip": corner_points(mesh, DOWN_LIP),
        "skin": corner_points(mesh, FACE_OVAL),
        "mouth": corner_points(mesh, INNER_MOUTH),
    }
