"""Photo-guided corrections of the mesh-derived label map (MediaPipe backend).

The face mesh ends mid-forehead, draws every face the same way under hair, and traces brows
along fixed vertex rows. Two corrections use the photo's colours, both relative to a skin colour
model sampled at vertices that are skin on nearly every face (cheeks, mid-forehead, nose bridge):

* :func:`skin_color_model` / :func:`skin_distance`: robust mean and covariance of skin in CIE Lab,
  and a per-pixel Mahalanobis distance to it (lightness down-weighted: shading varies, chroma less).
* :func:`extend_forehead`: grows skin above the face oval, up to ``forehead_reach`` times the
  oval-top-to-brow distance, through pixels that look like skin and connect to the face.
* :func:`hair_over_face`: pixels inside the upper face oval that do not look like skin and connect
  to the oval border above the eyes become hair (label 10), i.e. bangs and locks over the face;
  beards are left alone (nothing below the nose tip is marked).

All functions take the mesh in the pixel frame of ``rgb`` and return new arrays.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from fitter.targets import labels as L
from fitter.targets import mesh_parts as MP
from morphable_models import mediapipe_topology as T

#: mesh vertices that are bare skin on nearly every face: cheeks, mid-forehead, nose bridge
SKIN_SAMPLE_VERTICES: Tuple[int, ...] = (
    117, 118, 101, 36, 205, 50, 123, 187, 346, 347, 330, 266, 425, 280, 352, 411,
    151, 108, 337, 9, 6, 197, 195,
)


@dataclass
class SkinModel:
    """Gaussian skin colour in CIE Lab (OpenCV float scaling: L 0..100, a/b about -127..127)."""

    mean: np.ndarray  # [3]
    inv_cov: np.ndarray  # [3, 3]


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 RGB -> float32 CIE Lab (L 0..100)."""
    import cv2

    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _iod(mesh: np.ndarray) -> float:
    return float(np.linalg.norm(mesh[263, :2] - mesh[33, :2]))


def skin_color_model(lab: np.ndarray, mesh: np.ndarray, radius_frac: float = 0.05,
                     lightness_weight: float = 0.35) -> SkinModel:
    """Fit the skin colour model from patches around :data:`SKIN_SAMPLE_VERTICES`.

    Args:
        lab: [H, W, 3] float32 Lab image.
        mesh: [478, >=2] mesh in pixels of ``lab``.
        radius_frac: patch radius as a fraction of the inter-ocular distance.
        lightness_weight: the L channel's standard deviation is divided by this (< 1 tolerates
            shading more than hue changes).
    """
    H, W = lab.shape[:2]
    r = max(1, int(round(radius_frac * _iod(mesh))))
    samples = []
    for v in SKIN_SAMPLE_VERTICES:
        x, y = int(round(mesh[v, 0])), int(round(mesh[v, 1]))
        x0, x1, y0, y1 = max(0, x - r), min(W, x + r + 1), max(0, y - r), min(H, y + r + 1)
        if x1 > x0 and y1 > y0:
            samples.append(lab[y0:y1, x0:x1].reshape(-1, 3))
    if not samples:
        return SkinModel(mean=np.array([60.0, 15.0, 20.0]), inv_cov=np.diag([1 / 400.0, 1 / 36.0, 1 / 36.0]))
    s = np.concatenate(samples, 0).astype(np.float64)
    med = np.median(s, axis=0)
    # Drop outliers (a lock of hair, glasses, a highlight) before the covariance.
    mad = np.median(np.abs(s - med), axis=0) * 1.4826 + 1e-3
    keep = np.all(np.abs(s - med) < 3.0 * mad + np.array([4.0, 2.0, 2.0]), axis=1)
    if keep.sum() >= 10:
        s = s[keep]
    mean = s.mean(0)
    cov = np.cov(s.T) + np.diag([4.0, 1.0, 1.0])  # floor: a flat-coloured patch is no reason to be strict
    scale = np.diag([1.0 / lightness_weight, 1.0, 1.0])
    cov = scale @ cov @ scale
    return SkinModel(mean=mean, inv_cov=np.linalg.inv(cov))


def skin_distance(lab: np.ndarray, model: SkinModel) -> np.ndarray:
    """[H, W] float32 Mahalanobis distance of every pixel to the skin model."""
    d = lab.reshape(-1, 3).astype(np.float64) - model.mean
    m = np.einsum("ni,ij,nj->n", d, model.inv_cov, d)
    return np.sqrt(np.maximum(m, 0)).reshape(lab.shape[:2]).astype(np.float32)


def _face_axes(mesh: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Unit vectors (right, down) of the face frame: along the eyes and towards the chin."""
    ex = mesh[263, :2] - mesh[33, :2]
    ex = ex / max(np.linalg.norm(ex), 1e-9)
    down = np.array([-ex[1], ex[0]])
    if np.dot(mesh[152, :2] - mesh[10, :2], down) < 0:
        down = -down
    return ex, down


def _connected_to(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` in a connected component (8-neighbourhood) that touches ``seed``."""
    import cv2

    n, comp = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros_like(mask, dtype=bool)
    hit = np.unique(comp[seed & mask])
    hit = hit[hit > 0]
    return np.isin(comp, hit)


def extended_oval(mesh: np.ndarray, reach: float) -> np.ndarray:
    """[36, 2] face oval whose part above the eyes is pushed up by ``reach`` x (oval top - brows)."""
    oval = T.corner_points(mesh, T.FACE_OVAL)
    _, down = _face_axes(mesh)
    brow_level = float(np.dot(0.5 * (mesh[105, :2] + mesh[334, :2]), down))
    top_level = float(np.dot(mesh[10, :2], down))
    span = max(brow_level - top_level, 1.0)
    h = brow_level - oval @ down  # > 0 above the brows
    w = np.clip(h / span, 0.0, None)  # 0 at the brows, 1 at the oval top
    return oval - (reach * span * w)[:, None] * down[None, :]


def extend_forehead(labels: np.ndarray, dist: np.ndarray, mesh: np.ndarray, reach: float = 1.0,
                    max_dist: float = 3.0) -> np.ndarray:
    """Grow skin (label 8) above the oval through skin-coloured pixels connected to the face.

    Args:
        labels: [H, W] uint8 label map from :func:`fitter.targets.mesh_parts.rasterize_mesh_parts`.
        dist: [H, W] skin colour distance (:func:`skin_distance`).
        mesh: [478, >=2] mesh, pixels.
        reach: how far up to search, in units of the oval-top-to-brow distance.
        max_dist: pixels below this skin distance count as skin.
    Returns:
        new [H, W] uint8 label map.
    """
    import cv2

    region = np.zeros_like(labels)
    MP.fill_polygon(region, extended_oval(mesh, reach), 1)
    cand = (region > 0) & (labels == L.BACKGROUND) & (dist < max_dist)
    cand = cv2.morphologyEx(cand.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    face = labels == L.SKIN
    seed = cv2.dilate(face.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    grown = _connected_to(cand, seed)
    out = labels.copy()
    out[grown] = L.SKIN
    # Close pinholes (pores, freckles) in the grown forehead.
    closed = cv2.morphologyEx((out == L.SKIN).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)) > 0
    out[closed & (out == L.BACKGROUND) & (region > 0)] = L.SKIN
    return out


def hair_over_face(labels: np.ndarray, dist: np.ndarray, mesh: np.ndarray, min_dist: float = 6.0,
                   reach: float = 1.0) -> np.ndarray:
    """Mark hair (label 10) over the skin of the upper face.

    Non-skin-coloured skin pixels above the nose tip that connect to the outside of the (extended)
    oval at or above the eyes become hair; the rest of the face is left as it is.
    """
    import cv2

    _, down = _face_axes(mesh)
    H, W = labels.shape
    yy, xx = np.mgrid[0:H, 0:W]
    level = xx * down[0] + yy * down[1]
    nose_tip = float(np.dot(mesh[4, :2], down))
    eye_level = float(np.dot(0.5 * (mesh[33, :2] + mesh[263, :2]), down))
    inside = np.zeros_like(labels)
    MP.fill_polygon(inside, extended_oval(mesh, reach), 1)
    notskin = (dist > min_dist) & (labels == L.SKIN) & (level < nose_tip)
    notskin = cv2.morphologyEx(notskin.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    # Hair enters from outside the face: seed = outside the oval, above the eyes.
    outside = (inside == 0) & (level < eye_level)
    seed = cv2.dilate(outside.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    hair = _connected_to(notskin | (outside & (dist > min_dist)), seed) & notskin
    out = labels.copy()
    out[hair] = L.HAIR
    return out
