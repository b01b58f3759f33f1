"""Accuracy measures shared by tests, benchmarks and the batch quality flags."""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
from torch import Tensor

from fitter.geometry.raster import part_iou, rasterize_labels
from fitter.targets.metrics import landmark_nme  # noqa: F401  (one NME for the whole project)
from morphable_models.model import PART_NAMES, MorphableModel


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
    """Label maps of posed faces: [B, H, W] uint8, 0 background, i + 1 = PART_NAMES[i].

    Args:
        points_img: [B, V, 2] projected points (pixels of an image of ``size`` = (W, H)).
        depth: [B, V] camera depth (smaller = nearer).
    """
    tris, labels = model.all_triangles.to(points_img.device), model.triangle_part_labels.to(points_img.device)
    out = rasterize_labels(points_img, depth, tris, labels, size)
    return out.cpu().numpy().astype(np.uint8)


def part_ious(pred_labels: np.ndarray, gt_labels: np.ndarray) -> np.ndarray:
    """[8] IoU per part between two [H, W] label maps (NaN where the part is absent from both);
    numpy front of :func:`fitter.geometry.raster.part_iou`."""
    iou = part_iou(torch.as_tensor(np.asarray(pred_labels)), torch.as_tensor(np.asarray(gt_labels)), len(PART_NAMES))
    return iou.numpy().astype(np.float64)
