"""Shading term: does the fitted surface's shading explain the colours of the skin it lands on?

Landmarks and part masks see a face's outline; its depth (how far the nose stands out, how round
the cheeks are) moves them by a fraction of a pixel (BENCHMARKS.md, "Limits"). Shading sees it:
under a distant light a Lambertian surface's brightness is a function of its normal.

Model. Skin of one colour under distant light of order-2 spherical harmonics (Ramamoorthi &
Hanrahan 2001, :func:`fitter.losses.photometric.sh_basis`): the colour of a surface point with unit
normal n is

    c(n) = b(n)ᵀ M,    b(n) ∈ R⁹ the Lambert-convolved SH basis,  M ∈ R^{9×3}

where M = albedo ⊙ light per channel (one colour of skin only scales each channel's light, so the
two are one unknown). The surface points are the centroids of up to ``SHADING_TRIANGLES`` of the
model's skin and nose triangles, each with its triangle's normal (:class:`ShadingTable`; the
fitter picks them, spread by farthest-point sampling). At each evaluation M is solved by weighted
least squares over them (``solve_light``: iteratively reweighted, Cauchy weights u = w / (1 + (r / c)²) with
c = 0.05 in [0, 1] colour units, so beards, moles, cast shadows and highlights that one colour
under smooth light cannot explain get small weights) and then held fixed: at the least-squares
optimum its own gradient is zero, so the term's gradient is that of the shape alone. The term is

    L = Σ_v u_v (sqrt(|b(n_v)ᵀ M − c_v|² + ε²) − ε) / Σ_v u_v,      ε = 0.02,

a robust (Charbonnier) colour distance, c_v the image colour at the point's projection. Only the
normals carry gradient: the colours are read at the detached projections, since where the face is
in the image is the landmarks' and PRDL's business, and a colour's pull on a position on smooth
skin is mostly noise.

The points that count: seen by the z-buffer (all three corners), facing the camera (cos > 0.3, where
grazing normals and the image's blur at the outline meet), and projecting inside the targets'
skin mask, all four pixels of the bilinear read inside it (the parser's skin and nose, less
occluders: no brows, eyes, lips or hair). Each counted point weighs its share of the image,

    w_v = cos θ_v   (θ_v between its normal and the view ray; :func:`point_weights`),

since the samples are spread evenly over the surface and a patch turned away from the camera covers
cos θ of the pixels it would facing it: the term is a mean over the skin the photo shows, not over
the model's surface, and the cheeks towards the outline, where a pixel spans the most surface and the
outline's blur and the background reach in, count less (BENCHMARKS.md, "Session 23";
``FACING_POWER = 0`` gives every counted point weight 1 as before).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor

from fitter.losses.photometric import sample_image, sh_basis, triangle_normals

#: Cauchy scale of the light's IRLS weights, [0, 1] colour units
IRLS_SCALE = 0.05
#: IRLS rounds of the light solve (the first is plain least squares)
IRLS_ROUNDS = 4
#: Charbonnier ε of the term, [0, 1] colour units
CHARBONNIER_EPS = 0.02
#: smallest cosine between a counted point's normal and its view ray
MIN_FACING = 0.3
#: a counted point weighs cos θ to this power (1: its share of the image; 0: every point alike)
FACING_POWER = 1.0
#: most triangles the term reads (spread over the skin and nose; ICT has 9.6 k there)
SHADING_TRIANGLES = 2000


def solve_light(basis: Tensor, colours: Tensor, weights: Tensor, rounds: int = IRLS_ROUNDS,
                scale: float = IRLS_SCALE, ridge: float = 1e-3) -> Tuple[Tensor, Tensor]:
    """Robust least-squares light of one-coloured Lambertian skin (see the module docstring).

    Args:
        basis: [B, V, 9] SH basis of the points' normals (:func:`sh_basis`).
        colours: [B, V, 3] observed colours in [0, 1].
        weights: [B, V] 0/1 (or soft) point weights w_v.
        rounds: least-squares solves; after each, the weights become w / (1 + (r / scale)²).
        ridge: Tikhonov term on M, relative to the weights' mean (keeps faces with few points solvable).
    Returns:
        M [B, 9, 3] and the final weights u [B, V] (w times the Cauchy factor of the last residual).
    """
    if basis.dim() != 3 or basis.shape[-1] != 9:
        raise ValueError(f"basis must be [B, V, 9], got {tuple(basis.shape)}")
    if colours.shape != basis.shape[:2] + (3,) or weights.shape != basis.shape[:2]:
        raise ValueError(f"colours must be [B, V, 3] and weights [B, V] like basis {tuple(basis.shape)}")
    count = weights.sum(1).clamp_min(1.0)[:, None, None]
    eye = torch.eye(9, dtype=basis.dtype, device=basis.device)
    u = weights
    M = basis.new_zeros(basis.shape[0], 9, 3)
    for _ in range(max(1, rounds)):
        wb = basis * u.unsqueeze(-1)
        A = torch.einsum("bvk,bvl->bkl", wb, basis) / count + ridge * eye
        M = torch.linalg.solve(A, torch.einsum("bvk,bvc->bkc", wb, colours) / count)
        r = (torch.einsum("bvk,bkc->bvc", basis, M) - colours).norm(dim=-1)
        u = weights / (1.0 + (r / scale).square())
    return M, u


def point_weights(counted: Tensor, facing: Tensor, min_facing: float = MIN_FACING,
                  power: Optional[float] = None) -> Tensor:
    """[B, V] weight of each point in the light solve and the term: ``facing ** power`` (None:
    :data:`FACING_POWER`) where ``counted`` [B, V] (bool: seen, on the skin) and ``facing`` [B, V]
    (cos θ between the normal and the view ray) > ``min_facing``, else 0."""
    power = FACING_POWER if power is None else power
    if counted.shape != facing.shape:
        raise ValueError(f"counted and facing must have one shape, got {tuple(counted.shape)} and {tuple(facing.shape)}")
    keep = counted & (facing > min_facing)
    return torch.where(keep, facing.clamp_min(0.0) ** power, torch.zeros_like(facing))


def shading_loss(image: Tensor, skin: Tensor, points_img: Tensor, points_cam: Tensor, normals: Tensor,
                 visible: Tensor) -> Tensor:
    """The shading term (module docstring) of B faces.

    Args:
        image: [B, 3, H, W] crop colours in [0, 1].
        skin: [B, 1, H, W] 1 where a point may count (the targets' skin and nose, no occluder).
        points_img: [B, V, 2] projections, crop pixels (read detached).
        points_cam: [B, V, 3] camera-space points (the view rays; read detached).
        normals: [B, V, 3] unit outward normals in camera space (the term's gradient flows here).
        visible: [B, V] bool z-buffer visibility.
    Returns:
        [B] robust mean colour distance, [0, 1] units; 0 for a face with no counted point.
    """
    B, V = points_img.shape[:2]
    if points_cam.shape != (B, V, 3) or normals.shape != (B, V, 3) or visible.shape != (B, V):
        raise ValueError("points_cam and normals must be [B, V, 3] and visible [B, V] like points_img "
                         f"{tuple(points_img.shape)}")
    basis = sh_basis(normals)
    with torch.no_grad():
        where = points_img.detach()
        ray = points_cam.detach()
        facing = -(normals.detach() * ray).sum(-1) / ray.norm(dim=-1).clamp_min(1e-9)
        colours = sample_image(image, where)
        inside = sample_image(skin, where)[..., 0] > 0.999
        w = point_weights(visible & inside, facing).to(colours.dtype)
        M, u = solve_light(basis.detach(), colours, w)
    r = torch.bmm(basis, M) - colours
    err = torch.sqrt(r.square().sum(-1) + CHARBONNIER_EPS**2) - CHARBONNIER_EPS
    return (err * u).sum(1) / u.sum(1).clamp_min(1e-9)


@dataclass(frozen=True)
class ShadingTable:
    """The triangles whose shading the term reads, tabled once per model.

    The term is evaluated at each triangle's centroid with the triangle's own normal: one cross
    product per triangle, where vertex normals would gather every neighbour (the term's samples
    are spread over the face, so a sample's neighbours are not shared).

    Attributes:
        rows: [R] model points that are a corner of one of the triangles (the points a pass must compute).
        triangles: [T, 3] the triangles, as indices into ``rows`` (counter-clockwise = outwards).
        exp_basis: [K_exp, R, 3] the expression basis at ``rows`` (gathered once).
    """

    rows: Tensor
    triangles: Tensor
    exp_basis: Tensor

    @classmethod
    def build(cls, triangles: Tensor, exp_basis: Tensor) -> "ShadingTable":
        """From the chosen mesh ``triangles`` [T, 3] (model point indices) and the model's expression
        basis [K_exp, V, 3]."""
        rows, local = torch.unique(triangles, return_inverse=True)
        return cls(rows=rows, triangles=local.view(-1, 3), exp_basis=exp_basis[:, rows].contiguous())

    def centroids(self, corners: Tensor) -> Tensor:
        """[B, T, C] each triangle's mean of ``corners`` [B, R, C] (camera points or pixels)."""
        t = self.triangles
        return (corners[:, t[:, 0]] + corners[:, t[:, 1]] + corners[:, t[:, 2]]) / 3.0

    def normals(self, corners: Tensor) -> Tensor:
        """[B, T, 3] unit normals of the triangles from their camera-space ``corners`` [B, R, 3]."""
        n = triangle_normals(corners, self.triangles)
        return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def visible(self, corners_visible: Tensor) -> Tensor:
        """[B, T] bool: every corner of the triangle visible (``corners_visible`` [B, R] bool)."""
        t = self.triangles
        return corners_visible[:, t[:, 0]] & corners_visible[:, t[:, 1]] & corners_visible[:, t[:, 2]]
