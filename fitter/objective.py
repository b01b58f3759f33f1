"""The fitting objective: batched targets, the per-iteration loss context, and the name → term table.

``--loss NAME=W`` reaches every entry of :data:`TERMS`. Each term maps a :class:`LossContext` to an
unweighted per-image value [B]; :func:`weighted_terms` applies the configured weights (the one place
that writes "weighted terms + ``prdl/<part>`` + total"). Each term declares what its context must
hold in :data:`TERM_NEEDS`; :class:`Needs` gathers that for a set of active terms, so the forward
pass computes visibility, point sets, masks or the image only when a term reads them. The math lives
in :mod:`fitter.losses`; this module only gathers its inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fitter import losses as L
from fitter.geometry.camera import model_to_camera
from fitter.geometry.soft_raster import soft_silhouettes
from fitter.targets.types import Targets
from morphable_models.model import PART_NAMES, MorphableModel

NUM_PARTS = len(PART_NAMES)

#: side (pixels) of the square part masks that the soft-silhouette term compares.
MASK_RESOLUTION = 64


@dataclass
class TargetBatch:
    """B faces' targets as padded tensors (crop pixels; all crops share one size).

    Attributes:
        size: (W, H) of the crops.
        landmarks: [B, 68, 2]; landmark_valid: [B, 68] bool.
        points: [B, P, M, 2] target point sets C_p, padded; points_valid: [B, P, M] bool.
        part_present: [B, P] bool, False where the target part is empty (its PRDL weight is 0).
        anchors: [A, 2] PRDL anchors; desc: [B, P, A, 3] target descriptors Γ*_p (computed once; f_ave
            weighted by the mask pixels each thinned target point stands for; f_min and f_max also
            over ``Targets.part_outline``).
        occlusion: [B, H, W] bool; forehead_line: [B, 3] (0, 0, 1 where there is no cut).
        masks: [B, P, h, w] float part masks at the soft-raster resolution, or None.
        image: [B, 3, H, W] float in [0, 1], or None.
        skin: [B, 1, H, W] float, 1 where the targets' label map says skin or nose and no occluder
            covers it (the shading term's points), or None (built with ``image``).
        mesh_points: [B, N, 2] the front end's dense mesh (``Targets.mesh_points``, padded) and
            mesh_valid: [B, N] bool (False for faces without one), or both None when no face has one.
    """

    size: Tuple[int, int]
    landmarks: Tensor
    landmark_valid: Tensor
    points: Tensor
    points_valid: Tensor
    part_present: Tensor
    anchors: Tensor
    desc: Tensor
    occlusion: Tensor
    forehead_line: Tensor
    masks: Optional[Tensor] = None
    image: Optional[Tensor] = None
    mesh_points: Optional[Tensor] = None
    mesh_valid: Optional[Tensor] = None
    skin: Optional[Tensor] = None

    @property
    def batch_size(self) -> int:
        return int(self.landmarks.shape[0])

    def select(self, index: Tensor) -> "TargetBatch":
        """The faces ``index`` [b] (long) of this batch, in that order (the anchors are shared)."""
        def pick(x: Optional[Tensor]) -> Optional[Tensor]:
            return None if x is None else x.index_select(0, index)

        return TargetBatch(size=self.size, landmarks=pick(self.landmarks), landmark_valid=pick(self.landmark_valid),
                           points=pick(self.points), points_valid=pick(self.points_valid),
                           part_present=pick(self.part_present), anchors=self.anchors, desc=pick(self.desc),
                           occlusion=pick(self.occlusion), forehead_line=pick(self.forehead_line),
                           masks=pick(self.masks), image=pick(self.image),
                           mesh_points=pick(self.mesh_points), mesh_valid=pick(self.mesh_valid),
                           skin=pick(self.skin))


def _with_outline(targets: Sequence[Targets], points: Tensor, valid: Tensor, weights: Tensor):
    """(points [B, P, M + K, 2], valid [B, P, M + K], weights [B, P, M + K]) for Γ*: each set
    followed by its part's outline points (``Targets.part_outline``) with weight 0, so that they
    enter f_min and f_max only. Unchanged inputs when no target has an outline."""
    K = max((len(o) for t in targets for o in (t.part_outline or {}).values()), default=0)
    if K == 0:
        return points, valid, weights
    B, P, M = valid.shape
    pts = torch.cat([points, points.new_zeros(B, P, K, 2)], 2)
    val = torch.cat([valid, valid.new_zeros(B, P, K)], 2)
    wts = torch.cat([weights, weights.new_zeros(B, P, K)], 2)
    for b, t in enumerate(targets):
        for p, name in enumerate(PART_NAMES):
            o = np.asarray((t.part_outline or {}).get(name, np.zeros((0, 2))), np.float32).reshape(-1, 2)
            if len(o) and valid[b, p].any():
                pts[b, p, M : M + len(o)] = torch.from_numpy(o).to(pts.device)
                val[b, p, M : M + len(o)] = True
    return pts, val, wts


def collate_targets(
    targets: Sequence[Targets],
    anchor_grid: Tuple[int, int],
    device: torch.device,
    mask_resolution: Optional[int] = None,
    with_image: bool = False,
    image_optional: bool = False,
) -> TargetBatch:
    """Pad B :class:`Targets` into a :class:`TargetBatch` and compute Γ* once.

    ``with_image`` adds the crop images and their skin masks; a face without an image raises
    ValueError, or with ``image_optional`` gets a black image and an empty skin mask.

    Raises ValueError when the crops differ in size (a batch shares one camera).
    """
    sizes = {tuple(t.crop.size) for t in targets}
    if len(sizes) != 1:
        raise ValueError(f"all targets of a batch must share one crop size, got {sorted(sizes)}")
    W, H = sizes.pop()
    B = len(targets)
    f32 = dict(device=device, dtype=torch.float32)
    M = max(1, max(len(t.part_points[p]) for t in targets for p in PART_NAMES))
    points = torch.zeros(B, NUM_PARTS, M, 2, **f32)
    valid = torch.zeros(B, NUM_PARTS, M, dtype=torch.bool, device=device)
    weights = torch.zeros(B, NUM_PARTS, M, **f32)
    for b, t in enumerate(targets):
        for p, name in enumerate(PART_NAMES):
            pts = np.asarray(t.part_points[name], dtype=np.float32).reshape(-1, 2)
            if len(pts):
                points[b, p, : len(pts)] = torch.from_numpy(pts).to(device)
                valid[b, p, : len(pts)] = True
                w = (t.part_point_weights or {}).get(name)
                w = np.ones(len(pts), np.float32) if w is None else np.asarray(w, np.float32)
                weights[b, p, : len(pts)] = torch.from_numpy(w).to(device)
    anchors = L.make_anchors(anchor_grid, (W, H), device=device, dtype=torch.float32)
    d_pts, d_val, d_wts = _with_outline(targets, points, valid, weights)
    desc = L.prdl_descriptors(d_pts, anchors, d_val, weights=d_wts)
    lines = []
    for t in targets:
        fl = t.forehead_line
        lines.append(np.asarray(fl, dtype=np.float32) if fl is not None else np.array([0, 0, 1], np.float32))
    masks = None
    if mask_resolution:
        m = torch.stack(
            [
                torch.stack([torch.from_numpy(np.asarray(t.part_masks) == (p + 1)) for p in range(NUM_PARTS)])
                for t in targets
            ]
        ).to(**f32)
        masks = F.interpolate(m, size=(mask_resolution, mask_resolution), mode="area")
    image = skin = None
    if with_image:
        if not image_optional and any(t.image is None for t in targets):
            raise ValueError("the photometric term needs targets that carry the crop image")
        black = np.zeros((H, W, 3), np.uint8)
        image = torch.stack([torch.from_numpy(np.ascontiguousarray(black if t.image is None else t.image))
                             for t in targets]).to(**f32)
        image = image.permute(0, 3, 1, 2) / 255.0
        shaded = [PART_NAMES.index("skin") + 1, PART_NAMES.index("nose") + 1]
        skin = torch.stack([torch.from_numpy(np.isin(np.asarray(t.part_masks), shaded) & ~np.asarray(t.occlusion, bool)
                                             & (t.image is not None)) for t in targets]).to(**f32).unsqueeze(1)
    mesh_points = mesh_valid = None
    N = max((len(t.mesh_points) for t in targets if t.mesh_points is not None), default=0)
    if N:
        mesh_points = torch.zeros(B, N, 2, **f32)
        mesh_valid = torch.zeros(B, N, dtype=torch.bool, device=device)
        for b, t in enumerate(targets):
            if t.mesh_points is not None and len(t.mesh_points):
                mesh_points[b, : len(t.mesh_points)] = torch.from_numpy(np.asarray(t.mesh_points, np.float32)).to(device)
                mesh_valid[b, : len(t.mesh_points)] = True
    return TargetBatch(
        size=(W, H),
        landmarks=torch.stack([torch.from_numpy(np.asarray(t.landmarks, np.float32)) for t in targets]).to(**f32),
        landmark_valid=torch.stack([torch.from_numpy(np.asarray(t.landmark_valid, bool)) for t in targets]).to(device),
        points=points,
        points_valid=valid,
        part_present=valid.any(-1),
        anchors=anchors,
        desc=desc,
        occlusion=torch.stack([torch.from_numpy(np.asarray(t.occlusion, bool)) for t in targets]).to(device),
        forehead_line=torch.from_numpy(np.stack(lines)).to(**f32),
        masks=masks,
        image=image,
        mesh_points=mesh_points,
        mesh_valid=mesh_valid,
        skin=skin,
    )


@dataclass
class LossContext:
    """Everything a loss term may read at one iteration (B faces, V model points, P parts).

    Attributes:
        model: the morphable model (on the fitting device).
        target: the batched targets.
        id_coeffs [B, K_id], exp_coeffs [B, K_exp]: current coefficients.
        points_cam [B, V, 3]: camera-space points; points_img [B, V, 2]: projected, crop pixels.
        visible [B, V] bool: z-buffer visibility (refreshed every few iterations); None in a
            stage whose terms do not need it (see :class:`Needs`).
        landmark_index [B, 68]: model point of each landmark after contour marching.
        pred_points [B, P, N, 2] / pred_valid [B, P, N]: predicted part point sets (visible, not
            under an occluder, skin below the forehead cut; pred_valid None with ``visible``).
        part_weights [B, P]: w_p times 0 for parts absent from the target.
        part_triangles: per part, [F_p, 3] triangles (for the soft silhouettes).
        albedo [B, V, 3] or None, sh [B, 9, 3] or None: photometric state.
        rotation [B, 3, 3]: the pose's rotation (camera frame, after the model's axis flip).
        shading_table: the shading term's triangles (None without the term).
    """

    model: MorphableModel
    target: TargetBatch
    id_coeffs: Tensor
    exp_coeffs: Tensor
    points_cam: Tensor
    points_img: Tensor
    visible: Optional[Tensor]
    landmark_index: Tensor
    pred_points: Tensor
    pred_valid: Optional[Tensor]
    part_weights: Tensor
    part_triangles: List[Tensor]
    mask_resolution: int = MASK_RESOLUTION
    albedo: Optional[Tensor] = None
    sh: Optional[Tensor] = None
    #: [68] per-landmark weights, or [B, 68] per face where the jaw's weight fades with the yaw
    #: (:func:`fitter.losses.fade_jaw_weights`); None = all 1.
    landmark_weights: Optional[Tensor] = None
    #: [K_exp] per-shape factors of the sparse expression prior (None = all 1).
    exp_sparse_weights: Optional[Tensor] = None
    #: [478] per-point factors of the mesh term, by the front end's mesh index (None = all 1).
    mesh_point_weights: Optional[Tensor] = None
    #: MCP's γ of the sparse expression prior (:func:`fitter.losses.l1_prior`; None = plain L1).
    exp_sparse_gamma: Optional[float] = None
    #: [B, P, N] image-area weights of the predicted points in PRDL's f_ave; None = plain mean.
    pred_weights: Optional[Tensor] = None
    #: [B, P, N] bool, True where the rendered fit shows the point's part within a pixel (None =
    #: not computed); already folded into pred_valid.
    part_support: Optional[Tensor] = None
    #: [B] factor of the identity prior per face (:func:`fitter.losses.profile_factor`; None = 1).
    id_prior_scale: Optional[Tensor] = None
    #: [B] factor of both expression priors per face (the same function, its own gain; None = 1).
    exp_prior_scale: Optional[Tensor] = None
    #: [B, 3, 3] the pose's rotation (the shading term takes the expression's displacement out with it).
    rotation: Optional[Tensor] = None
    #: the shading term's triangles (None: no shading term)
    shading_table: Optional[L.ShadingTable] = None
    _prdl_parts: Optional[Tensor] = None

    def prdl_parts(self) -> Tensor:
        """[B, P] unweighted PRDL of each part, computed once per context.

        :func:`fitter.losses.prdl_part_losses` compacts each part to its valid points and
        describes parts of similar size in one call, so the cost is about |A|·Σ_p N_p distance
        pairs rather than |A|·P·max_p N_p.
        """
        if self._prdl_parts is None:
            t = self.target
            self._prdl_parts = L.prdl_part_losses(self.pred_points, self.pred_valid, t.desc, t.anchors,
                                                  pred_weights=self.pred_weights)
        return self._prdl_parts

    def landmarks_img(self) -> Tensor:
        """[B, 68, 2] projected (marched) landmarks."""
        idx = self.landmark_index.unsqueeze(-1).expand(-1, -1, 2)
        return torch.gather(self.points_img, 1, idx)


def _prdl(ctx: LossContext) -> Tensor:
    """L_prdl = Σ_p w_p L_p (paper Eq. 6); same value as fitter.losses.prdl_loss."""
    return (ctx.prdl_parts() * ctx.part_weights).sum(-1)


def prdl_per_part(ctx: LossContext) -> Tensor:
    """[B, P] w_p-weighted PRDL of each part (for the history)."""
    return ctx.prdl_parts() * ctx.part_weights


def _lmk(ctx: LossContext) -> Tensor:
    return L.landmark_loss(ctx.landmarks_img(), ctx.target.landmarks, ctx.target.landmark_valid, ctx.landmark_weights)


def _mesh_lmk(ctx: LossContext) -> Tensor:
    """Mean squared distance of the model's counterparts of the front end's mesh points
    (``model.mesh_landmarks``) to those points, each weighted by ``mesh_point_weights``; 0 for a
    face or a model without them."""
    m, t = ctx.model, ctx.target
    if m.mesh_landmarks is None or t.mesh_points is None:
        return ctx.points_img.new_zeros(ctx.points_img.shape[0])
    ids = m.mesh_landmark_ids.to(t.mesh_points.device)
    inside = ids < t.mesh_points.shape[1]
    ids = ids.clamp_max(t.mesh_points.shape[1] - 1)
    valid = t.mesh_valid[:, ids] & inside
    weights = None if ctx.mesh_point_weights is None else ctx.mesh_point_weights.to(ids.device)[ids]
    return L.landmark_loss(ctx.points_img[:, m.mesh_landmarks], t.mesh_points[:, ids], valid, weights)


def _closure(pairs, one_sided: bool) -> Callable[[LossContext], Tensor]:
    def term(ctx: LossContext) -> Tensor:
        return L.closure_loss(ctx.landmarks_img(), ctx.target.landmarks, ctx.target.landmark_valid, pairs, one_sided)

    return term


def _id_prior(ctx: LossContext) -> Tensor:
    value = L.gaussian_prior(ctx.id_coeffs, ctx.model.id_std[: ctx.id_coeffs.shape[1]])
    return value if ctx.id_prior_scale is None else value * ctx.id_prior_scale


def _exp_prior(ctx: LossContext) -> Tensor:
    value = L.gaussian_prior(ctx.exp_coeffs, ctx.model.exp_std[: ctx.exp_coeffs.shape[1]])
    return value if ctx.exp_prior_scale is None else value * ctx.exp_prior_scale


def _exp_sparse(ctx: LossContext) -> Tensor:
    value = L.l1_prior(ctx.exp_coeffs, ctx.model.exp_std[: ctx.exp_coeffs.shape[1]], ctx.exp_sparse_weights,
                       ctx.exp_sparse_gamma)
    return value if ctx.exp_prior_scale is None else value * ctx.exp_prior_scale


def _segmentation(fn: Callable) -> Callable[[LossContext], Tensor]:
    def term(ctx: LossContext) -> Tensor:
        t = ctx.target
        return fn(ctx.pred_points, ctx.pred_valid, t.points, t.points_valid, ctx.part_weights)

    return term


def _sil_iou(ctx: LossContext) -> Tensor:
    if ctx.target.masks is None:
        raise ValueError("sil_iou needs target masks (collate_targets(mask_resolution=...))")
    sil = soft_silhouettes(ctx.points_img, ctx.part_triangles, ctx.target.size, resolution=ctx.mask_resolution)
    return L.soft_iou_loss(sil, ctx.target.masks, ctx.part_weights)


def _pho(ctx: LossContext) -> Tensor:
    if ctx.target.image is None or ctx.albedo is None or ctx.sh is None:
        raise ValueError("the photometric term needs the crop image and colour state")
    normals = L.vertex_normals(ctx.points_cam, ctx.model.triangles)
    colors = L.sh_shading(ctx.albedo, normals, ctx.sh)
    n = ctx.model.num_mesh_vertices
    return L.photometric_loss(ctx.target.image, ctx.points_img[:, :n], ctx.visible[:, :n], colors[:, :n])


def _shading(ctx: LossContext) -> Tensor:
    """The shading term at the centroids of the model's skin and nose triangles
    (``LossContext.shading_table``), its gradient reaching the identity only. The corners'
    camera-space points less the expression's displacement (value 0, gradient A_exp) give normals
    whose expression gradient is 0; the normals ``n = R ñ`` are then turned by ``R_d Rᵀ`` (R_d = R
    detached: the identity in value, since RᵀR = I for every pose), which leaves them unchanged but
    takes the pose out of their gradient. Shading is left to say what the face's shape is; the
    landmarks say what it does (on real photos, with the expressions free, beards and shadows went
    into cheekPuff and the like: BENCHMARKS.md, "Session 19") and where it faces (the light is
    solved anew at every evaluation, so a turn of the head and a turn of the light look alike:
    "Session 20")."""
    t, table = ctx.target, ctx.shading_table
    if t.image is None or t.skin is None or ctx.visible is None or ctx.rotation is None or table is None:
        raise ValueError("the shading term needs the crop image, its skin mask, visibility, the pose and its table")
    rows = table.rows
    corners = ctx.points_cam[:, rows]
    e = ctx.model.effective_exp(ctx.id_coeffs, ctx.exp_coeffs)  # what the bases are blended with
    if e.requires_grad:
        moved = torch.einsum("bk,kvc->bvc", e - e.detach(), table.exp_basis[: e.shape[1]])  # all 0
        corners = corners - model_to_camera(moved, ctx.rotation, moved.new_zeros(moved.shape[0], 3))
    normals = table.normals(corners)
    R = ctx.rotation
    if R.requires_grad:
        normals = torch.einsum("bij,btj->bti", R.detach() @ R.transpose(1, 2), normals)
    return L.shading_loss(t.image, t.skin, table.centroids(ctx.points_img[:, rows]), table.centroids(corners),
                          normals, table.visible(ctx.visible[:, rows]))


#: name -> term(ctx) -> [B] unweighted. Keys equal fitter.config.LOSS_NAMES.
TERMS: Dict[str, Callable[[LossContext], Tensor]] = {
    "prdl": _prdl,
    "lmk": _lmk,
    "mesh_lmk": _mesh_lmk,
    "eye_closure": _closure(L.EYE_PAIRS, one_sided=True),
    "lip_closure": _closure(L.LIP_PAIRS, one_sided=False),
    "id_prior": _id_prior,
    "exp_prior": _exp_prior,
    "exp_sparse": _exp_sparse,
    "pho": _pho,
    "shading": _shading,
    "sil_iou": _sil_iou,
    "icp_t2p": _segmentation(L.icp_t2p_loss),
    "icp_p2t": _segmentation(L.icp_p2t_loss),
    "chamfer": _segmentation(L.chamfer_loss),
    "dcd": _segmentation(L.dcd_loss),
}

#: what each term reads beyond coefficients and projected points: ``visibility`` (the z-buffer),
#: ``point_sets`` (the predicted part point masks; implies visibility), ``masks`` (target part
#: masks at MASK_RESOLUTION), ``image`` (the crop and the colour state), ``all_points`` (every model
#: point's projection, not only the landmark, contour and part points). Keys equal TERMS's.
TERM_NEEDS: Dict[str, FrozenSet[str]] = {
    "prdl": frozenset({"point_sets"}),
    "lmk": frozenset(),
    "mesh_lmk": frozenset(),
    "eye_closure": frozenset(),
    "lip_closure": frozenset(),
    "id_prior": frozenset(),
    "exp_prior": frozenset(),
    "exp_sparse": frozenset(),
    "shading": frozenset({"visibility", "some_image"}),
    "pho": frozenset({"visibility", "point_sets", "image", "all_points"}),
    "sil_iou": frozenset({"visibility", "point_sets", "masks", "all_points"}),
    "icp_t2p": frozenset({"point_sets"}),
    "icp_p2t": frozenset({"point_sets"}),
    "chamfer": frozenset({"point_sets"}),
    "dcd": frozenset({"point_sets"}),
}


@dataclass(frozen=True)
class Needs:
    """What a forward pass must compute for a set of weighted terms."""

    point_sets: bool = False
    masks: bool = False
    #: every face must carry its crop image (the photometric term)
    image: bool = False
    all_points: bool = False
    #: the crop images of the faces that have one (the shading term: a face without one counts no points)
    some_image: bool = False

    @classmethod
    def of(cls, terms: Mapping[str, float]) -> "Needs":
        """The union of :data:`TERM_NEEDS` over the terms of positive weight."""
        wanted = set().union(*(TERM_NEEDS[n] for n, w in terms.items() if w > 0))
        return cls(point_sets=bool(wanted & {"visibility", "point_sets"}), masks="masks" in wanted,
                   image="image" in wanted, all_points="all_points" in wanted,
                   some_image=bool(wanted & {"image", "some_image"}))

    @property
    def mask_resolution(self) -> Optional[int]:
        """The target mask size ``collate_targets`` must build (None: none)."""
        return MASK_RESOLUTION if self.masks else None


def weighted_terms(values: Mapping[str, Tensor], weights: Mapping[str, float], per_part: bool = True) -> Dict[str, Tensor]:
    """The weighted objective, term by term: ``{"total", term..., "prdl/<part>"...}`` → [B] float64.

    Args:
        values: unweighted term values {name: [B]} of one forward pass, plus ``prdl_parts`` [B, P]
            (w_p-weighted PRDL per part, :func:`prdl_per_part`) when PRDL was computed.
        weights: λ per term; every term with λ > 0 gets a column (0 where it was not computed,
            as in the rigid stage).
        per_part: add ``prdl/<part>`` columns (λ_prdl times the part's value) when λ_prdl > 0.
    Returns:
        ``total`` = Σ λ·value over the terms, then each λ·value, then the per-part PRDL.
    """
    if not values:
        raise ValueError("weighted_terms needs the values of at least one term")
    ref = next(iter(values.values()))
    zero = torch.zeros(ref.shape[0], dtype=torch.float64, device=ref.device)
    names = [k for k, w in weights.items() if w > 0]
    cols = {k: values[k].detach().double() * weights[k] if k in values else zero for k in names}
    out = {"total": sum(cols.values(), zero)}
    out.update(cols)
    if per_part and "prdl" in names:
        parts = values.get("prdl_parts")
        for p, name in enumerate(PART_NAMES):
            out[f"prdl/{name}"] = parts[:, p].detach().double() * weights["prdl"] if parts is not None else zero
    return out
