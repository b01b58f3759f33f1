"""One forward pass of a batch: coefficients → mesh → camera → image → loss context → term values.

``V(α) = R(V̄ + α_id A_id + α_exp A_exp) F + t`` is projected by the batch's camera object; the
jaw landmarks march along the current outline; what the active terms need (:class:`Needs`) is
computed on top: z-buffer visibility and the label support of the part points (refreshed only
when asked: every ``visibility_every`` iterations), the predicted part point masks and their area
weights. Term values are unweighted [B]; the weighted total is Σ λ·value in the order of ``terms``.

Between refreshes a pass reads few of the model's points: the part points, the corners of the part
triangles (area weights), the landmark, contour and dense-mesh landmark points (about 60 % of ICT's
12 k). Those passes blend, pose and project only these rows (:meth:`ForwardPass.read_rows`; the
shape's basis product is the largest single cost of an iteration on a CPU) and leave the other
rows of ``points_img`` / ``points_cam`` NaN, so that a read of them cannot go unnoticed. Refreshes,
terms that read every point (``Needs.all_points``) and passes without point sets use all rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor

from fitter import losses as L
from fitter.fit.params import FaceParams, ParamSpace
from fitter.fit.point_sets import PartTables, vertex_masks
from fitter.geometry.camera import model_to_camera
from fitter.geometry.cameras import FittingCamera
from fitter.geometry.raster import face_labels, label_support
from fitter.geometry.rotation import matrix_to_euler
from fitter.geometry.visibility import zbuffer_visibility
from fitter.objective import TERMS, LossContext, Needs, TargetBatch, prdl_per_part
from morphable_models.model import ShapeRows

Colour = Tuple[Tensor, Tensor]


@dataclass
class Visibility:
    """What the camera sees of the fit at the last refresh.

    points: [B, V] bool z-buffer visibility (None = not computed yet). support: [B, P, N] bool,
    True where the rendered fit shows the point's part within ``support_radius`` pixels (None =
    not computed). kept / below: [B, V] bool, :func:`fitter.fit.point_sets.vertex_masks` at the
    refresh, set with ``points`` (visible and not under an occluder; below the forehead cut). Like the z-buffer they
    hold between refreshes: recomputed at every pass, a skin point on the forehead cut or an
    occluder's edge went in and out of the skin's point set step after step, and PRDL jumped with
    it (BENCHMARKS.md "Speed, session 20").
    """

    points: Optional[Tensor] = None
    support: Optional[Tensor] = None
    kept: Optional[Tensor] = None
    below: Optional[Tensor] = None

    def _fields(self) -> Tuple[Optional[Tensor], ...]:
        return (self.points, self.support, self.kept, self.below)

    def select(self, index: Tensor) -> "Visibility":
        """The faces ``index`` [b] (long) of the batch."""
        return Visibility(*(None if x is None else x.index_select(0, index) for x in self._fields()))

    def merged(self, index: Tensor, part: "Visibility", batch: int) -> "Visibility":
        """A copy of this [B] visibility with the rows ``index`` replaced by ``part``'s [b] (rows
        never computed are False)."""
        out = []
        for full, sub in zip(self._fields(), part._fields()):
            if sub is None:
                out.append(full)
                continue
            base = full.clone() if full is not None else sub.new_zeros((batch,) + tuple(sub.shape[1:]))
            base[index] = sub
            out.append(base)
        return Visibility(*out)


@dataclass
class Evaluation:
    """A forward pass: ``context`` (what the terms read), ``values`` {term: [B] unweighted, plus
    ``prdl_parts`` [B, P] when PRDL ran}, ``total`` [B] weighted, ``visibility`` used."""

    context: LossContext
    values: Dict[str, Tensor]
    total: Tensor
    visibility: Visibility


class ForwardPass:
    """The forward model of one (model, settings); stateless between calls but for the kept shape
    of constant coefficients (:meth:`_shape`, a cache that never changes a result).

    Args:
        space: the parameter map (holds the model). tables: the part point tables.
        part_weights: [P] w_p. landmark_weights: [68]. exp_sparse_weights: [K_exp].
        support_radius: pixels (< 0: no label support). area_weights: PRDL's f_ave weighted by area.
        profile_id_gain: the identity prior's factor at profile (:func:`fitter.losses.profile_factor`
            of the current head yaw; 0 = off).
        profile_exp_gain: the same for both expression priors (``exp_prior`` and ``exp_sparse``).
        profile_jaw: the jaw landmarks' weight factor at profile (:func:`fitter.losses.fade_jaw_weights`;
            1 = the same weight at every pose).
        exp_sparse_gamma: MCP's γ of the sparse expression prior (None = plain L1).
        mesh_point_weights: [478] factors of the mesh term per front-end mesh point (None = all 1).
        shading_table: the shading term's triangles (:class:`fitter.losses.ShadingTable`; None: no term).
    """

    def __init__(self, space: ParamSpace, tables: PartTables, part_weights: Tensor, landmark_weights: Tensor,
                 exp_sparse_weights: Tensor, support_radius: int = 1, area_weights: bool = True,
                 profile_id_gain: float = 0.0, exp_sparse_gamma: Optional[float] = None,
                 mesh_point_weights: Optional[Tensor] = None, profile_exp_gain: float = 0.0,
                 shading_table: Optional[L.ShadingTable] = None, profile_jaw: float = 1.0):
        self.space, self.model, self.tables = space, space.model, tables
        self.part_weights = part_weights
        self.landmark_weights = landmark_weights
        self.exp_sparse_weights = exp_sparse_weights
        self.support_radius = support_radius
        self.area_weights = area_weights
        self.profile_id_gain = profile_id_gain
        self.profile_exp_gain = profile_exp_gain
        self.profile_jaw = profile_jaw
        self.exp_sparse_gamma = exp_sparse_gamma
        self.mesh_point_weights = mesh_point_weights
        self.shading_table = shading_table
        self._kept_shape: Optional[Tuple[Tensor, Tensor, Tensor]] = None  # (id, exp, points): see _shape
        self._rows: Optional[ShapeRows] = None  # see read_rows

    def read_rows(self) -> ShapeRows:
        """The model points a pass between refreshes reads (built once): every entry of the part
        point table (its padding too), the corners of the part triangles when PRDL weighs points
        by area, the fixed landmarks, the contour candidates, the dense-mesh landmarks and the
        corners of the shading term's triangles."""
        if self._rows is None:
            m, tables = self.model, self.tables
            read = [tables.index.reshape(-1), m.landmarks68, m.contour_candidates.reshape(-1).clamp_min(0)]
            if self.area_weights:
                read.append(tables.area_triangles.reshape(-1))
            if m.mesh_landmarks is not None:
                read.append(m.mesh_landmarks)
            if self.shading_table is not None:
                read.append(self.shading_table.rows)
            self._rows = m.rows(torch.unique(torch.cat([r.to(m.device) for r in read])))
        return self._rows

    def _posed_rows(self, id_c: Tensor, exp_c: Tensor, R: Tensor, t: Tensor, camera: FittingCamera,
                    log_depth: Tensor) -> Tuple[Tensor, Tensor]:
        """([B, V, 3] camera-space, [B, V, 2] image points) computed on :meth:`read_rows` only; the
        other rows NaN."""
        rows = self.read_rows()
        cam = model_to_camera(rows.vertices(id_c, exp_c), R, t)
        img = camera.project(cam, log_depth)
        V = self.model.num_points
        return _spread_rows(cam, rows.index, V), _spread_rows(img, rows.index, V)

    def _shape(self, id_c: Tensor, exp_c: Tensor) -> Tensor:
        """[B, V, 3] model-space points. Coefficients held constant (no gradient: the rigid stage)
        give the same shape at every iteration, which is kept and reused while they are unchanged."""
        if id_c.requires_grad or exp_c.requires_grad:
            return self.model.vertices(id_c, exp_c)
        kept = self._kept_shape
        if kept is not None and torch.equal(kept[0], id_c) and torch.equal(kept[1], exp_c):
            return kept[2]
        verts = self.model.vertices(id_c, exp_c)
        self._kept_shape = (id_c.clone(), exp_c.clone(), verts)
        return verts

    def _see(self, pts_img: Tensor, pts_cam: Tensor, tb: TargetBatch) -> Visibility:
        """Z-buffer visibility, the part points' label support and the points' occluder and forehead
        masks at the current fit."""
        size = tb.size
        vis, face = zbuffer_visibility(pts_img, pts_cam[..., 2], self.tables.all_triangles, size, return_faces=True)
        support = None
        if self.support_radius >= 0:
            labels = face_labels(face, self.tables.tri_labels)  # the z-buffer's own triangle map
            support = label_support(labels, pts_img[:, self.tables.index], self.support_radius)
        kept, below = vertex_masks(pts_img, vis, tb.occlusion, tb.forehead_line)
        return Visibility(vis, support, kept, below)

    def __call__(self, params: FaceParams, tb: TargetBatch, camera: FittingCamera, terms: Mapping[str, float],
                 colour: Optional[Colour] = None, visibility: Optional[Visibility] = None, refresh: bool = True,
                 point_sets: Optional[bool] = None) -> Evaluation:
        """Evaluate ``terms`` (name → λ) at ``params``.

        Args:
            visibility: the last refresh's (reused unless ``refresh`` or missing).
            point_sets: compute visibility and the part point sets (None: when a term needs them).
        """
        m, tables = self.model, self.tables
        id_c, exp_c = self.space.coeffs(params)
        R, t = self.space.pose(params, camera)
        needs = Needs.of(terms)
        needs_sets = needs.point_sets if point_sets is None else point_sets
        visibility = visibility or Visibility()
        see = needs_sets and (visibility.points is None or refresh)
        if needs_sets and not see and not needs.all_points:
            pts_cam, pts_img = self._posed_rows(id_c, exp_c, R, t, camera, params.log_depth)
        else:
            pts_cam = model_to_camera(self._shape(id_c, exp_c), R, t)
            pts_img = camera.project(pts_cam, params.log_depth)
        if see:
            with torch.no_grad():
                visibility = self._see(pts_img.detach(), pts_cam.detach(), tb)
        with torch.no_grad():
            lmk_index = L.march_contour_landmarks(pts_img.detach(), m.contour_candidates, m.landmarks68)
        pred_valid = pred_weights = None
        if needs_sets:
            with torch.no_grad():
                kept, below = visibility.kept, visibility.below
                pred_valid = tables.counted(kept, below, visibility.support, tb.part_present)
                if self.area_weights and terms.get("prdl", 0) > 0:
                    pred_weights = tables.area_weights(pts_img.detach(), kept, below) * pred_valid
        ctx = LossContext(
            model=m, target=tb, id_coeffs=id_c, exp_coeffs=exp_c, points_cam=pts_cam, points_img=pts_img,
            visible=visibility.points, landmark_index=lmk_index, pred_points=pts_img[:, tables.index],
            pred_valid=pred_valid, part_weights=tb.part_present.to(pts_img.dtype) * self.part_weights,
            part_triangles=tables.part_triangles, landmark_weights=self.landmark_weights,
            exp_sparse_weights=self.exp_sparse_weights, exp_sparse_gamma=self.exp_sparse_gamma,
            mesh_point_weights=self.mesh_point_weights,
            pred_weights=pred_weights, part_support=visibility.support, rotation=R, shading_table=self.shading_table,
        )
        if self.profile_id_gain > 0 or self.profile_exp_gain > 0 or self.profile_jaw != 1.0:
            yaw = matrix_to_euler(R.detach())[:, 1]
            if self.profile_jaw != 1.0 and terms.get("lmk", 0) > 0:
                ctx.landmark_weights = L.fade_jaw_weights(self.landmark_weights, L.profile_ramp(yaw), self.profile_jaw)
            if self.profile_id_gain > 0 and terms.get("id_prior", 0) > 0:
                ctx.id_prior_scale = L.profile_factor(yaw, self.profile_id_gain)
            if self.profile_exp_gain > 0 and (terms.get("exp_prior", 0) > 0 or terms.get("exp_sparse", 0) > 0):
                ctx.exp_prior_scale = L.profile_factor(yaw, self.profile_exp_gain)
        if colour:
            gain, ctx.sh = colour
            base = m.albedo if m.albedo is not None else torch.ones_like(m.mean)
            ctx.albedo = base.unsqueeze(0) * gain  # [B, V, 3]
        values: Dict[str, Tensor] = {}
        total = torch.zeros(pts_img.shape[0], device=pts_img.device, dtype=pts_img.dtype)
        for name, weight in terms.items():
            if weight <= 0:
                continue
            v = TERMS[name](ctx)
            values[name] = v
            total = total + weight * v
        if terms.get("prdl", 0) > 0:
            values["prdl_parts"] = prdl_per_part(ctx)
        return Evaluation(ctx, values, total, visibility)

    def initial_colour(self, tb: TargetBatch) -> Colour:
        """Photometric state: albedo (a per-face colour gain when the model has albedo, else a
        uniform colour) [B, 1, 3] and SH lighting [B, 9, 3] (ambient start)."""
        B, dev = tb.batch_size, self.model.mean.device
        img = tb.image
        mean_col = img.mean(dim=(2, 3)).view(B, 1, 3) if self.model.albedo is None else torch.ones(B, 1, 3, device=dev)
        sh = torch.zeros(B, 9, 3, device=dev)
        sh[:, 0] = 1.0 / 0.886227  # ambient term so that shading starts at 1
        return mean_col.clone().requires_grad_(True), sh.requires_grad_(True)


def _spread_rows(x: Tensor, index: Tensor, V: int) -> Tensor:
    """[B, S, C] values of the points ``index`` [S] → [B, V, C], the other rows NaN
    (differentiable in ``x``)."""
    return torch.index_copy(x.new_full((x.shape[0], V, x.shape[2]), float("nan")), 1, index, x)
