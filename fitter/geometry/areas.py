"""Image-space areas of projected meshes, and the per-point weights they give.

A part's pixels cover its image region uniformly, while the model's vertices do not (dense around
the eyes and lips, foreshortened towards the silhouette). Weighting each projected point by the
image area it stands for (a third of each adjacent visible triangle, lumped onto the nearest kept
point when the set is subsampled) makes the predicted mean distance f_ave of PRDL an estimate of
the same integral as the target's pixel mean.
"""
from __future__ import annotations

import torch
from torch import Tensor


def triangle_areas_2d(points: Tensor, triangles: Tensor) -> Tensor:
    """Unsigned areas of projected triangles.

    Args:
        points: [B, V, 2] image points (pixels). triangles: [F, 3] long vertex indices.
    Returns:
        [B, F] areas in pixels².
    """
    a = points[:, triangles[:, 0]]
    b = points[:, triangles[:, 1]]
    c = points[:, triangles[:, 2]]
    ab, ac = b - a, c - a
    return 0.5 * (ab[..., 0] * ac[..., 1] - ab[..., 1] * ac[..., 0]).abs()


def lumped_point_weights(tri_area: Tensor, tri_valid: Tensor, owner: Tensor, num_points: int) -> Tensor:
    """Share each valid triangle's area equally among the points that own its corners.

    Args:
        tri_area: [B, F] triangle areas; tri_valid: [B, F] bool (triangles that count).
        owner: [F, 3] long, the output point owning each corner, -1 for corners that belong to no
            output point (e.g. a vertex of another part).
        num_points: size of the output.
    Returns:
        [B, num_points] weights (pixels²); points owning no valid triangle get 0.
    """
    B = tri_area.shape[0]
    owned = owner >= 0  # [F, 3]
    n_owned = owned.sum(-1).clamp_min(1).to(tri_area.dtype)  # [F]
    share = torch.where(tri_valid, tri_area, torch.zeros_like(tri_area)) / n_owned  # [B, F]
    corner_share = share.unsqueeze(-1).expand(B, -1, 3) * owned.to(tri_area.dtype)  # [B, F, 3]
    idx = owner.clamp_min(0).reshape(1, -1).expand(B, -1)
    out = torch.zeros(B, num_points, dtype=tri_area.dtype, device=tri_area.device)
    return out.scatter_add_(1, idx, corner_share.reshape(B, -1))
