"""The model's side of the part point sets V2d_p, and which of their points count at an iteration.

Tables are built once per (model, settings): each part's model points (its vertices, or the
vertices of its triangles), thinned by farthest-point sampling to at most ``max_part_points``
(``max_skin_points`` for skin) and padded into ``index`` [P, N]. At each iteration a predicted
point counts when it is visible (z-buffer), not under an occluder of the target, for skin below
the forehead cut, and (optionally) where the rendered fit shows its part nearby. Parts the target
shows but the fit hides entirely fall back to wider masks (:func:`fall_back_when_empty`).
With ``point_weights="area"`` each counted point carries the image area of its share of the part's
triangles (:mod:`fitter.geometry.areas`).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from fitter import losses as L
from fitter.geometry.areas import lumped_point_weights, triangle_areas_2d
from morphable_models.model import PART_NAMES, MorphableModel

SKIN = PART_NAMES.index("skin")


class PartTables:
    """Index tables of the predicted part point sets (all on the model's device).

    Attributes:
        all_triangles [F, 3]: mesh plus hole triangles; tri_labels [F]: 0 or part + 1.
        part_triangles: per part, [F_p, 3].
        index [P, N] long / valid [P, N] bool: each part's kept model points, padded.
        area_triangles [T, 3], area_owner [T, 3], area_is_skin [T]: see :meth:`area_weights`.
    """

    def __init__(self, model: MorphableModel, part_points: str = "triangles", max_part_points: int = 10**9,
                 max_skin_points: int = 10**9):
        m = model
        self.device = m.mean.device
        self.all_triangles = m.all_triangles
        self.tri_labels = m.triangle_part_labels
        self.part_triangles = [self.all_triangles[self.tri_labels == p + 1] for p in range(len(PART_NAMES))]
        if part_points == "vertices":
            full_sets = [m.parts[name] for name in PART_NAMES]
        else:
            full_sets = [torch.unique(t.reshape(-1)) for t in self.part_triangles]
        kept = []
        for name, idx in zip(PART_NAMES, full_sets):
            cap = max_skin_points if name == "skin" else max_part_points
            if idx.numel() > cap:
                idx = idx[L.farthest_point_sample(m.mean[idx], cap)]
            kept.append(idx)
        n = max(1, max(i.numel() for i in kept))
        self.index = torch.zeros(len(PART_NAMES), n, dtype=torch.long, device=self.device)
        self.valid = torch.zeros(len(PART_NAMES), n, dtype=torch.bool, device=self.device)
        for p, idx in enumerate(kept):
            self.index[p, : idx.numel()] = idx
            self.valid[p, : idx.numel()] = True
        self._area_tables(m, full_sets, kept, n)

    def _area_tables(self, m: MorphableModel, full_sets: List[Tensor], kept: List[Tensor], n: int) -> None:
        """``area_triangles`` [T, 3] are the part triangles of all parts, ``area_owner`` [T, 3] the
        flat index (part * n + position in the part's kept points) owning each corner, or -1 for a
        corner outside the part. A part vertex dropped by the sampling is owned by the nearest
        kept vertex of its part (on the mean shape), so the kept points carry the whole area."""
        V = m.mean.shape[0]
        tris, owners, skin_flags = [], [], []
        for p, name in enumerate(PART_NAMES):
            full, keep = full_sets[p], kept[p]
            pos = torch.full((V,), -1, dtype=torch.long, device=self.device)
            if full.numel() and keep.numel():
                near = torch.empty(full.numel(), dtype=torch.long, device=self.device)
                for s in range(0, full.numel(), 2048):
                    near[s : s + 2048] = torch.cdist(m.mean[full[s : s + 2048]], m.mean[keep]).argmin(-1)
                pos[full] = near
                pos[keep] = torch.arange(keep.numel(), device=self.device)
            t = self.part_triangles[p]
            own = pos[t]
            tris.append(t)
            owners.append(torch.where(own >= 0, own + p * n, own))
            skin_flags.append(torch.full((t.shape[0],), name == "skin", dtype=torch.bool, device=self.device))
        self.area_triangles = torch.cat(tris, 0)
        self.area_owner = torch.cat(owners, 0)
        self.area_is_skin = torch.cat(skin_flags, 0)

    def counted(self, kept: Tensor, below: Tensor, support: Optional[Tensor], present: Tensor) -> Tensor:
        """[B, P, N] bool: the predicted points that count this iteration.

        Args:
            kept [B, V] / below [B, V]: from :func:`vertex_masks`. support [B, P, N] or None:
                the rendered fit shows the point's part nearby. present [B, P]: the target shows
                the part.
        """
        real = self.valid.unsqueeze(0).expand(len(below), -1, -1).clone()
        real[:, SKIN] &= below[:, self.index[SKIN]]
        shown = real & kept[:, self.index]
        valid = shown & support if support is not None else shown
        return fall_back_when_empty(valid, (shown, real), present)

    def area_weights(self, pts_img: Tensor, kept: Tensor, below: Tensor) -> Tensor:
        """[B, P, N] image area (pixels²) each kept part point stands for: a share of every part
        triangle whose three corners count (see :mod:`fitter.geometry.areas`)."""
        B = pts_img.shape[0]
        tri = self.area_triangles
        ok = kept[:, tri].all(-1)
        ok &= ~self.area_is_skin | below[:, tri].all(-1)
        area = triangle_areas_2d(pts_img, tri)
        P, N = self.index.shape
        return lumped_point_weights(area, ok, self.area_owner, P * N).view(B, P, N)


def vertex_masks(pts_img: Tensor, visible: Tensor, occlusion: Tensor, forehead_line: Tensor) -> Tuple[Tensor, Tensor]:
    """Per model point [B, V] bool: ``kept`` (visible and not under an occluder) and ``below``
    (on the chin side of the forehead cut; applies to skin).

    Args:
        pts_img [B, V, 2] pixels; visible [B, V] bool; occlusion [B, H, W] bool; forehead_line
        [B, 3] (a, b, c) with a x + b y + c ≥ 0 below the cut.
    """
    B, H, W = occlusion.shape
    xi = pts_img[..., 0].round().long()
    yi = pts_img[..., 1].round().long()
    inside = (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
    flat = yi.clamp(0, H - 1) * W + xi.clamp(0, W - 1)
    occluded = torch.gather(occlusion.view(B, -1), 1, flat) & inside
    line = forehead_line
    below = line[:, None, 0] * pts_img[..., 0] + line[:, None, 1] * pts_img[..., 1] + line[:, None, 2] >= 0
    return visible & ~occluded, below


def fall_back_when_empty(valid: Tensor, wider: Sequence[Tensor], present: Tensor) -> Tensor:
    """[B, P, N] part point masks where a part the target shows (``present`` [B, P]) but the fit
    hides entirely takes the next of the ``wider`` [B, P, N] masks instead.

    Without this, an emptied part (the far eye turned behind the nose, an eye closed by the
    expression) has descriptors of 0: its PRDL is a constant Σ Γ*² with no gradient, and nothing
    brings the part back. Its hidden points still project near where they would show, so they
    give PRDL the gradient that pulls the part into view.
    """
    out = valid
    for mask in wider:
        empty = ~out.any(-1) & present  # [B, P]
        if not bool(empty.any()):
            break
        out = torch.where(empty.unsqueeze(-1), mask, out)
    return out
