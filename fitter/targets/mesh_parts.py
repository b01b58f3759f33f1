"""Part label maps from the MediaPipe 478-point face mesh (pure geometry, no image).

The part polygons (which mesh vertices outline each part) are
:mod:`morphable_models.mediapipe_topology`'s: the model's drawn parts
(:mod:`morphable_models.frontend_parts`) use the same table, so a photo's targets and the model
label a part the same way. This module rasterizes them on a photo:

* skin: the face oval (it stops mid-forehead; :mod:`fitter.targets.skin_refine` extends it using
  the photo) minus the other parts;
* the inner parts painted farthest first, then the mouth opening (label 12); a closed eye's slit
  (thinner than :data:`MIN_EYE_HEIGHT_PX`) is left to the skin.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from fitter.targets import labels as L
from morphable_models import mediapipe_topology as T
from morphable_models.mediapipe_topology import BROW_GROW, EYE_SHRINK
from morphable_models.polygons import polygon_area


def fill_polygon(label_map: np.ndarray, poly: np.ndarray, value: int) -> None:
    """Rasterize a closed polygon [K, 2] (pixel centres at integers) into ``label_map`` in place.

    OpenCV's fill paints every pixel the edges touch, about half a pixel beyond the polygon all round
    (an eye 30 × 10 px: 17 % more than its area), where a rendered fit shows a pixel only when its
    centre is inside (:func:`morphable_models.polygons.paint_polygon`, which the evaluation's outlines
    use). Painting the targets by that rule instead was tried (session 25): the targets then match the
    model's drawn parts better (their IoU on the neutral face 0.77-0.90 → 0.83-0.95), and the fits
    on held-apart photos did not gain (300-W NME 0.0421 → 0.0423, the annotated outlines' IoU 0.584 →
    0.576; BENCHMARKS.md "Session 25"), so the targets keep this fill, for which ``EYE_SHRINK`` was chosen.
    """
    import cv2

    if poly.shape[0] < 3 or not np.all(np.isfinite(poly)):
        return
    pts = np.round(poly * 16.0).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(label_map, [pts], int(value), lineType=cv2.LINE_8, shift=4)


#: an eye polygon thinner than this on average (its area over its corner-to-corner length, pixels)
#: is a closed eye's slit, not an eye region: it is not painted (the eye is absent from the targets, as
#: the fit's own closed lids are, ``FitConfig.support_radius``)
MIN_EYE_HEIGHT_PX = 1.0


def is_slit_region(area: float, length: float) -> bool:
    """True when a region of ``area`` (pixels²) spanning ``length`` (pixels, corner to corner) is on
    average thinner than :data:`MIN_EYE_HEIGHT_PX`: the one slit rule of targets, outlines and renders."""
    return area < MIN_EYE_HEIGHT_PX * max(length, 1e-9)


def is_slit(poly: np.ndarray) -> bool:
    """True when an eye polygon [16, 2] (corners at 0 and 8) is thinner than :data:`MIN_EYE_HEIGHT_PX`."""
    return is_slit_region(polygon_area(poly), float(np.linalg.norm(poly[8] - poly[0])))


def mesh_part_polygons(mesh: np.ndarray, brow_grow: float = BROW_GROW, eye_shrink: float = EYE_SHRINK) -> Dict[int, np.ndarray]:
    """Part polygons of one face, keyed by label, in the mesh's pixel frame.

    Args:
        mesh: [478, >=2] (or [468, >=2]) MediaPipe face mesh points, pixels.
        brow_grow: brow widening, fraction of the brow height on each side.
        eye_shrink: eye polygons pulled in by this fraction of the inter-ocular distance (the lid
            vertices sit on the lid margin, slightly outside the visible eyeball).
    Returns:
        {label: [K, 2] polygon}: skin (face oval), nose, brows, eyes, lips and inner mouth.
    """
    polygons = T.part_polygons(mesh, brow_grow=brow_grow, eye_shrink=eye_shrink)
    return {L.INNER_MOUTH if name == "mouth" else L.PART_LABELS[name]: poly for name, poly in polygons.items()}


#: the vertices whose mean depth orders the painting of the inner parts
_DEPTH_VERTICES = {
    L.NOSE: (1, 4, 5, 195, 197, 6, 98, 327), L.RIGHT_BROW: T.RIGHT_BROW_UPPER, L.LEFT_BROW: T.LEFT_BROW_UPPER,
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


def rasterize_mesh_parts(mesh: np.ndarray, size: Tuple[int, int], brow_grow: float = BROW_GROW,
                         eye_shrink: float = EYE_SHRINK) -> np.ndarray:
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
        if lab in (L.RIGHT_EYE, L.LEFT_EYE) and is_slit(polys[lab]):
            continue
        fill_polygon(out, polys[lab], lab)
    return out
