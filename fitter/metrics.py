"""Accuracy measures shared by tests, benchmarks and the batch quality flags."""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import torch
from torch import Tensor

from fitter.geometry.curves import open_curve
from fitter.geometry.raster import part_iou, rasterize_labels
from fitter.targets import labels as L
from fitter.targets.mesh_parts import is_slit_region
from fitter.targets.metrics import landmark_nme  # noqa: F401  (one NME for the whole project)
from morphable_models.model import OUTLINE_ARCS_68, PART_NAMES, MorphableModel
from morphable_models.polygons import paint_polygon, polygon_area


def similarity_align(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Umeyama similarity (scale, rotation, translation) aligning ``src`` [N, 3] onto ``dst`` [N, 3].

    Returns the aligned copy of ``src`` [N, 3].
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    var = (s0**2).sum() / len(src)
    scale = np.trace(np.diag(S) @ D) / var
    return (scale * (R @ s0.T)).T + mu_d


def aligned_vertex_error(pred: np.ndarray, gt: np.ndarray, mm_per_unit: float = 1.0) -> float:
    """Mean Euclidean distance (mm) after similarity alignment of ``pred`` [N, 3] onto ``gt`` [N, 3]."""
    aligned = similarity_align(pred, gt)
    return float(np.linalg.norm(aligned - np.asarray(gt, np.float64), axis=1).mean() * mm_per_unit)


def face_vertex_indices(model: MorphableModel) -> np.ndarray:
    """Mesh vertices (no virtual points) that belong to one of the 8 parts: the observable face."""
    idx = torch.cat([model.parts[p] for p in PART_NAMES]).cpu().numpy()
    return np.unique(idx[idx < model.num_mesh_vertices])


def render_part_labels(model: MorphableModel, points_img: Tensor, depth: Tensor, size: Tuple[int, int]) -> np.ndarray:
    """Label maps of posed faces: [B, H, W] uint8, 0 background, i + 1 = PART_NAMES[i]; a closed
    eye's slit is skin (:func:`drop_eye_slits`, as in the targets).

    Args:
        points_img: [B, V, 2] projected points (pixels of an image of ``size`` = (W, H)).
        depth: [B, V] camera depth (smaller = nearer).
    """
    tris, labels = model.all_triangles.to(points_img.device), model.triangle_part_labels.to(points_img.device)
    out = rasterize_labels(points_img, depth, tris, labels, size)
    return drop_eye_slits(out.cpu().numpy().astype(np.uint8))


def drop_eye_slits(labels: np.ndarray) -> np.ndarray:
    """``labels`` [B, H, W] with every eye region thinner than ``MIN_EYE_HEIGHT_PX`` relabelled skin.

    The front end's targets and the annotated outlines (:func:`annotated_part_labels`) leave a
    closed eye's slit out (its area over its length, pixels, below
    ``fitter.targets.mesh_parts.MIN_EYE_HEIGHT_PX``); a rendered fit whose lids meet keeps a strip
    of the triangles between them, scored as an open eye where the truth shows none. The same rule
    here (``is_slit_region``): an eye's area is its pixel count, its length its pixels' extent along
    their principal axis.
    """
    out = np.array(labels, np.uint8, copy=True)
    for b in range(out.shape[0]):
        for eye in (L.RIGHT_EYE, L.LEFT_EYE):
            mask = out[b] == eye
            ys, xs = np.nonzero(mask)
            if len(xs) == 0:
                continue
            xy = np.stack([xs, ys], 1).astype(np.float64)
            xy -= xy.mean(0)
            axis = np.linalg.svd(xy, full_matrices=False)[2][0]
            proj = xy @ axis
            if is_slit_region(len(xs), proj.max() - proj.min() + 1):
                out[b][mask] = L.SKIN
    return out


def part_ious(pred_labels: np.ndarray, gt_labels: np.ndarray) -> np.ndarray:
    """[8] IoU per part between two [H, W] label maps (NaN where the part is absent from both);
    numpy front of :func:`fitter.geometry.raster.part_iou`."""
    iou = part_iou(torch.as_tensor(np.asarray(pred_labels)), torch.as_tensor(np.asarray(gt_labels)), len(PART_NAMES))
    return iou.numpy().astype(np.float64)


#: points on each outline arc (an eye's lid in the 224 px crops is 20-50 px long: a few points per pixel)
ARC_SAMPLES = 64


def annotated_part_labels(landmarks68: np.ndarray, size: Tuple[int, int],
                          arcs: Dict[str, Tuple[Tuple[int, ...], ...]] = OUTLINE_ARCS_68) -> np.ndarray:
    """[H, W] uint8 label map (``PART_NAMES`` index + 1) of the parts an annotator's 68 points outline.

    Each part of ``arcs`` (default: the eyes and the lips, :data:`OUTLINE_ARCS_68`) is the region inside
    its arcs joined end to end, each a smooth curve through its landmarks
    (:func:`fitter.geometry.curves.open_curve`), painted by a rendered fit's pixel rule (a pixel whose
    centre lies inside, :func:`morphable_models.polygons.paint_polygon`); every other pixel is
    0, so compare only those parts (:data:`OUTLINED_PARTS`). A ring thinner than
    ``fitter.targets.mesh_parts.MIN_EYE_HEIGHT_PX`` on average (its area over the distance between its
    arcs' first points: an eye's corners) is a closed eye's slit and is not painted, as the front
    end's targets leave it.

    Args:
        landmarks68: [68, 2] points in pixels of the map (0-based: pixel centres at integers).
        size: (W, H) of the map.
    """
    lm = np.asarray(landmarks68, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks68 must be [68, 2], got shape {lm.shape}")
    W, H = size
    out = np.zeros((H, W), np.uint8)
    for name, part_arcs in arcs.items():
        ring = np.concatenate([open_curve(lm[list(a)], ARC_SAMPLES)[:-1] for a in part_arcs])
        width = float(np.linalg.norm(lm[part_arcs[0][0]] - lm[part_arcs[1][0]]))
        if is_slit_region(polygon_area(ring), width):
            continue
        paint_polygon(out, ring, PART_NAMES.index(name) + 1)
    return out


#: the parts :func:`annotated_part_labels` draws, as indices into ``PART_NAMES``
OUTLINED_PARTS: Tuple[int, ...] = tuple(PART_NAMES.index(n) for n in OUTLINE_ARCS_68)
