"""The rule that gives a triangle a part label from the labels of its three points.

Labels follow :data:`morphable_models.model.PART_NAMES`: 0 = no part, i + 1 = part i. Used by
:attr:`morphable_models.model.MorphableModel.triangle_part_labels` (and re-exported by
:mod:`fitter.geometry.raster`, which rasterizes the labels).
"""
from __future__ import annotations

import torch
from torch import Tensor


def triangle_labels(triangles: Tensor, point_labels: Tensor) -> Tensor:
    """Part label of each triangle: the label shared by at least two of its three vertices, else 0.

    Args:
        triangles: [F, 3] vertex indices.
        point_labels: [V] long label per vertex.
    Returns:
        [F] long, on the device of ``point_labels``.
    """
    if triangles.dim() != 2 or triangles.shape[1] != 3:
        raise ValueError(f"triangles must be [F, 3], got {tuple(triangles.shape)}")
    if point_labels.dim() != 1:
        raise ValueError(f"point_labels must be [V], got {tuple(point_labels.shape)}")
    lab = point_labels.to(torch.long)[triangles.to(device=point_labels.device, dtype=torch.long)]
    l0, l1, l2 = lab.unbind(-1)
    out = torch.where((l0 == l1) | (l0 == l2), l0, torch.where(l1 == l2, l1, torch.zeros_like(l0)))
    return out
