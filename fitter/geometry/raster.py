"""Part label maps of a posed mesh, and the Part IoU metric.

Labels follow ``morphable_models.model.PART_NAMES``: 0 = background / no part, i + 1 = part i.
The label images come from the exact z-buffer of :mod:`fitter.geometry.zbuffer` (pixel centres at
integer coordinates), so they are not differentiable; they serve outputs and Part IoU evaluation.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from fitter.geometry.zbuffer import rasterize_depth
from morphable_models.part_labels import triangle_labels  # noqa: F401  (re-exported: the rule lives there)


def rasterize_labels(
    points_img: Tensor,
    depth: Tensor,
    triangles: Tensor,
    tri_labels: Tensor,
    size: Tuple[int, int],
) -> Tensor:
    """Label of the nearest surface at every pixel centre.

    Args:
        points_img: [B, V, 2] projected vertices, pixels (x, y).
        depth: [B, V] camera-space depth (smaller = nearer).
        triangles: [F, 3] vertex indices.
        tri_labels: [F] long label per triangle (see :func:`morphable_models.part_labels.triangle_labels`).
        size: (W, H) of the output.
    Returns:
        [B, H, W] long, 0 where no triangle covers the pixel (or the nearest has label 0).
    """
    if tri_labels.shape != triangles.shape[:1]:
        raise ValueError(f"tri_labels must be [F] = [{triangles.shape[0]}], got {tuple(tri_labels.shape)}")
    _, face = rasterize_depth(points_img, depth, triangles, size)
    return face_labels(face, tri_labels)


def face_labels(face: Tensor, tri_labels: Tensor) -> Tensor:
    """Label map [B, H, W] long from a nearest-triangle map [B, H, W] (-1 = none -> label 0)."""
    lab = tri_labels.to(device=face.device, dtype=torch.long)
    return torch.where(face >= 0, lab[face.clamp_min(0)], torch.zeros_like(face))


def part_iou(labels_a: Tensor, labels_b: Tensor, num_parts: int = 8) -> Tensor:
    """Per-part intersection over union of two label maps.

    Args:
        labels_a, labels_b: [H, W] integer label maps (0 = background, k = part k - 1).
        num_parts: number of part labels 1..num_parts.
    Returns:
        [num_parts] float32 IoU of labels 1..num_parts; NaN where the part is in neither map.
    """
    if labels_a.shape != labels_b.shape or labels_a.dim() != 2:
        raise ValueError(f"label maps must be two [H, W] of the same size, got {tuple(labels_a.shape)} "
                         f"and {tuple(labels_b.shape)}")
    a = labels_a.to(torch.long).reshape(-1)
    b = labels_b.to(device=labels_a.device, dtype=torch.long).reshape(-1)
    k = torch.arange(1, num_parts + 1, device=a.device).view(-1, 1)
    in_a = a.view(1, -1) == k
    in_b = b.view(1, -1) == k
    inter = (in_a & in_b).sum(dim=1).to(torch.float32)
    union = (in_a | in_b).sum(dim=1).to(torch.float32)
    return torch.where(union > 0, inter / union.clamp_min(1.0), torch.full_like(union, float("nan")))


def label_support(labels: Tensor, points: Tensor, radius: int = 1) -> Tensor:
    """Does the label map show each point's part within ``radius`` pixels of it?

    A projected part point can be visible and still cover no pixel of its part (a part seen
    edge-on at the silhouette, a closed eyelid's zero-width slit). A pixel-level target has no
    pixels there, so such points would disagree with any pixel label map; this test finds them.

    Args:
        labels: [B, H, W] long rendered labels (0 = background, p + 1 = part p).
        points: [B, P, N, 2] points of part p in row p, pixels (x, y).
        radius: half-size of the square window searched around the nearest pixel.
    Returns:
        [B, P, N] bool; points outside the image count as supported (nothing is known there),
        non-finite points as not supported.
    """
    B, H, W = labels.shape
    P = points.shape[1]
    k = torch.arange(1, P + 1, device=labels.device).view(1, P, 1, 1)
    onehot = (labels.unsqueeze(1) == k).to(torch.float32)  # [B, P, H, W]
    if radius > 0:
        onehot = torch.nn.functional.max_pool2d(onehot, 2 * radius + 1, stride=1, padding=radius)
    xi = torch.round(points[..., 0])
    yi = torch.round(points[..., 1])
    inside = (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)  # False for NaN
    xi = torch.where(inside, xi, torch.zeros_like(xi))
    yi = torch.where(inside, yi, torch.zeros_like(yi))
    flat = (yi.clamp(0, H - 1) * W + xi.clamp(0, W - 1)).to(torch.long).reshape(B, P, -1)
    hit = onehot.reshape(B, P, -1).gather(2, flat).reshape(inside.shape) > 0
    finite = torch.isfinite(points).all(-1)
    return (hit | ~inside) & finite
