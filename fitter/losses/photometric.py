"""Per-vertex photometric term: image colours at visible projected vertices vs. model colours.

Lighting is Lambertian with 9 real spherical-harmonics coefficients per colour channel (order 2,
Ramamoorthi & Hanrahan 2001): the irradiance at a surface with unit normal n is

    E(n) = Σ_k Â_l(k) Y_k(n) L_k,    Â_0 = π, Â_1 = 2π/3, Â_2 = π/4,

and :func:`sh_basis` returns the products Â_l Y_k(n) so that ``shading = albedo · (basis @ L)``.
With only L_0 set, E = π · 0.282095 · L_0 everywhere, so ``L_0 = 1 / (π · 0.282095) ≈ 1.128``
gives unit irradiance (shading = albedo).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as Fn
from torch import Tensor

# Real SH normalization constants, bands 0-2.
_Y0 = 0.5 * math.sqrt(1.0 / math.pi)  # 0.282095
_Y1 = math.sqrt(3.0 / (4.0 * math.pi))  # 0.488603
_Y2 = 0.5 * math.sqrt(15.0 / math.pi)  # 1.092548
_Y20 = 0.25 * math.sqrt(5.0 / math.pi)  # 0.315392
_Y22 = 0.25 * math.sqrt(15.0 / math.pi)  # 0.546274
# Lambertian (clamped cosine) band attenuation.
_A0, _A1, _A2 = math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0


def triangle_normals(points: Tensor, triangles: Tensor) -> Tensor:
    """Triangle normals scaled by twice the triangle's area, ``(b − a) × (c − a)`` (counter-clockwise
    triangles face outwards).

    Args:
        points: [B, V, 3].
        triangles: [F, 3] vertex indices.
    Returns:
        [B, F, 3], not normalized.
    """
    a, b, c = points[:, triangles[:, 0]], points[:, triangles[:, 1]], points[:, triangles[:, 2]]
    return torch.cross(b - a, c - a, dim=-1)


def vertex_normals(points: Tensor, triangles: Tensor) -> Tensor:
    """Area-weighted unit vertex normals (counter-clockwise triangles face outwards).

    Args:
        points: [B, V, 3].
        triangles: [F, 3] vertex indices.
    Returns:
        [B, V, 3] unit normals (zero for vertices in no triangle).
    """
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be [B, V, 3], got {tuple(points.shape)}")
    tri = triangles.to(device=points.device, dtype=torch.long)
    face_n = triangle_normals(points, tri)  # length = 2 × area
    n = torch.zeros_like(points)
    for k in range(3):
        n = n.index_add(1, tri[:, k], face_n)
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def sh_basis(normals: Tensor) -> Tensor:
    """Lambertian-convolved real SH basis of order 2.

    Args:
        normals: [B, V, 3] unit normals (x, y, z) in the frame the lighting is expressed in.
    Returns:
        [B, V, 9]: Â0·Y00, Â1·(Y1-1, Y10, Y11), Â2·(Y2-2, Y2-1, Y20, Y21, Y22) with
        Y1-1 ∝ y, Y10 ∝ z, Y11 ∝ x, Y2-2 ∝ xy, Y2-1 ∝ yz, Y20 ∝ 3z² − 1, Y21 ∝ xz, Y22 ∝ x² − y².
    """
    x, y, z = normals.unbind(-1)
    one = torch.ones_like(x)
    return torch.stack(
        (
            _A0 * _Y0 * one,
            _A1 * _Y1 * y,
            _A1 * _Y1 * z,
            _A1 * _Y1 * x,
            _A2 * _Y2 * x * y,
            _A2 * _Y2 * y * z,
            _A2 * _Y20 * (3.0 * z * z - 1.0),
            _A2 * _Y2 * x * z,
            _A2 * _Y22 * (x * x - y * y),
        ),
        dim=-1,
    )


def sh_shading(albedo: Tensor, normals: Tensor, sh_coeffs: Tensor) -> Tensor:
    """Lit vertex colours ``albedo · (sh_basis(normals) @ L)`` per channel.

    Args:
        albedo: [B, V, 3] in [0, 1].
        normals: [B, V, 3] unit normals.
        sh_coeffs: [B, 9, 3] lighting coefficients L per channel.
    Returns:
        [B, V, 3] colours (not clamped).
    """
    if sh_coeffs.shape[-2:] != (9, 3):
        raise ValueError(f"sh_coeffs must be [B, 9, 3], got {tuple(sh_coeffs.shape)}")
    irradiance = torch.einsum("bvk,bkc->bvc", sh_basis(normals), sh_coeffs)
    return albedo * irradiance


def sample_image(image: Tensor, points_img: Tensor) -> Tensor:
    """Bilinear colours of the image at sub-pixel positions (pixel centres at integer coordinates;
    outside the image the border colour is repeated).

    Args:
        image: [B, C, H, W] float.
        points_img: [B, V, 2] pixels (x, y).
    Returns:
        [B, V, C].
    """
    if image.dim() != 4:
        raise ValueError(f"image must be [B, C, H, W], got {tuple(image.shape)}")
    B, _, H, W = image.shape
    if points_img.shape[0] != B or points_img.shape[-1] != 2:
        raise ValueError(f"points_img must be [{B}, V, 2], got {tuple(points_img.shape)}")
    # align_corners=True: -1 and +1 are the centres of the first and last pixels.
    scale = points_img.new_tensor([2.0 / max(W - 1, 1), 2.0 / max(H - 1, 1)])
    grid = (points_img * scale - 1.0).unsqueeze(2).to(image.dtype)  # [B, V, 1, 2]
    out = Fn.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.squeeze(-1).transpose(1, 2)


def photometric_loss(
    image: Tensor, points_img: Tensor, visible: Tensor, vertex_colors: Tensor, robust: bool = True
) -> Tensor:
    """Colour error at visible vertices.

    Args:
        image: [B, 3, H, W] float in [0, 1].
        points_img: [B, V, 2] projected vertices, pixels.
        visible: [B, V] bool.
        vertex_colors: [B, V, 3] model colours (SH-lit albedo or a mean colour) in [0, 1].
        robust: True = mean of per-vertex Euclidean colour distances (L2,1, less sensitive to
            outliers such as hair or specularities); False = mean squared distance.
    Returns:
        [B] colour units (0..1 scale; squared when not robust); 0 with no visible vertex.
    """
    if visible.shape != points_img.shape[:2] or vertex_colors.shape[:2] != points_img.shape[:2]:
        raise ValueError("visible must be [B, V] and vertex_colors [B, V, 3] like points_img")
    sampled = sample_image(image, points_img)
    sq = (sampled - vertex_colors.to(sampled.dtype)).square().sum(dim=-1)  # [B, V]
    err = torch.sqrt(sq + 1e-12) - 1e-6 if robust else sq
    v = visible.to(device=sq.device, dtype=sq.dtype)
    return (err * v).sum(dim=1) / v.sum(dim=1).clamp_min(1.0)
