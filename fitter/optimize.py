"""Fit a morphable model to one or many faces: :class:`Fitter`.

Stages (each with per-face early stopping on the relative change of its loss):

1. ``rigid``: a closed-form weak-perspective Procrustes solution from the inner 51 landmarks, then
   rotation + translation refined on the landmark term alone.
2. ``full``: identity, expression, rotation and translation on every active term of
   ``FitConfig.loss_weights`` (PRDL + landmarks + priors by default).

N faces are fitted in one vectorized optimization: every tensor carries the batch dimension, each
face's loss depends on its own parameters only, and a face that has converged (or hit NaN) is frozen
while the others go on. The optimizer reads and writes no files.

Parametrization: coefficients are optimized in units of their prior standard deviation
(``coeff = z * std``), rotation as the continuous 6D representation, translation as (t_x, t_y) in
model units plus log t_z (perspective) or log scale (weak perspective).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from fitter import losses as L
from fitter.config import FitConfig, resolve_device
from fitter.errors import FitError, NoFaceError
from fitter.geometry.camera import model_to_camera, project_perspective, project_weak
from fitter.geometry.areas import lumped_point_weights, triangle_areas_2d
from fitter.geometry.raster import face_labels, label_support, triangle_labels
from fitter.geometry.rotation import matrix_to_euler, matrix_to_rotation_6d, rotation_6d_to_matrix
from fitter.geometry.visibility import zbuffer_visibility
from fitter.objective import POINT_SET_TERMS, TERMS, VISIBILITY_FREE_TERMS, LossContext, TargetBatch, collate_targets, prdl_per_part
from fitter.result import Camera, FitResult, LossHistory
from fitter.targets.types import Targets
from morphable_models.model import PART_NAMES, MorphableModel

#: progress(iteration, total_iterations, mean_loss)
ProgressFn = Callable[[int, int, float], None]

#: the iBUG-68 points used for the closed-form rigid initialisation (no jaw contour).
_INNER_LANDMARKS = list(range(17, 68))

#: objective value reported to the optimizer for a face whose loss is NaN/inf (its gradient is 0).
_NONFINITE_LOSS = 1e12


@dataclass
class _Params:
    """Optimized tensors of a batch (all [B, ...], requires_grad)."""

    z_id: Tensor
    z_exp: Tensor
    rot6d: Tensor
    trans_xy: Tensor
    log_depth: Tensor  # log t_z (perspective) or log scale (weak)

    def tensors(self) -> List[Tensor]:
        return [self.z_id, self.z_exp, self.rot6d, self.trans_xy, self.log_depth]


def _fall_back_when_empty(valid: Tensor, wider: Sequence[Tensor], present: Tensor) -> Tensor:
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


@dataclass
class _Visibility:
    """What the camera sees of the current fit (refreshed every ``visibility_every`` iterations).

    points: [B, V] bool z-buffer visibility. support: [B, P, N] bool, True where the rendered fit
    shows the point's part within a pixel of it (None = not computed).
    """

    points: Optional[Tensor]  # None until a stage that needs it has run
    support: Optional[Tensor] = None


class Fitter:
    """Fit ``model`` to faces. ``Fitter(model, config).fit(targets_or_image)``.

    Args:
        model: the morphable model (moved to the fitting device).
        config: a :class:`FitConfig` (default: the paper's weights).
        target_config: options of the image front end, used when ``fit`` gets an image.
    """

    def __init__(self, model: MorphableModel, config: Optional[FitConfig] = None, target_config=None):
        self.config = config or FitConfig()
        self.device = torch.device(resolve_device(self.config.device))
        if self.config.model_landmarks == "vertices" and model.landmark_vertices is not None:
            model = replace(model, landmarks68=model.landmark_vertices)
        self.model = model.to(self.device, dtype=torch.float32)
        self.target_config = target_config
        self._prepare_model_tables()

    # ------------------------------------------------------------------ set-up
    def _prepare_model_tables(self) -> None:
        m, cfg = self.model, self.config
        torch.manual_seed(cfg.seed)
        self.num_id = min(cfg.num_id if cfg.num_id is not None else m.num_id, m.num_id)
        self.num_exp = min(cfg.num_exp if cfg.num_exp is not None else m.num_exp, m.num_exp)
        self.all_triangles = torch.cat([m.triangles, m.hole_triangles.to(m.triangles)], 0)
        tri_lab = triangle_labels(self.all_triangles, m.part_labels())
        self.tri_labels = tri_lab
        self.part_triangles = [self.all_triangles[tri_lab == p + 1] for p in range(len(PART_NAMES))]
        full_sets = [self._part_point_set(p) for p in range(len(PART_NAMES))]
        idx_lists = []
        for name, idx in zip(PART_NAMES, full_sets):
            cap = cfg.max_skin_points if name == "skin" else cfg.max_part_points
            if idx.numel() > cap:
                keep = L.farthest_point_sample(m.mean[idx], cap)
                idx = idx[keep]
            idx_lists.append(idx)
        n = max(1, max(i.numel() for i in idx_lists))
        self.part_index = torch.zeros(len(PART_NAMES), n, dtype=torch.long, device=self.device)
        self.part_index_valid = torch.zeros(len(PART_NAMES), n, dtype=torch.bool, device=self.device)
        for p, idx in enumerate(idx_lists):
            self.part_index[p, : idx.numel()] = idx
            self.part_index_valid[p, : idx.numel()] = True
        self._prepare_area_tables(full_sets, idx_lists, n)
        self.landmark_weights = L.default_landmark_weights().to(self.device)
        w = torch.tensor([float(cfg.part_weights.get(p, 1.0)) for p in PART_NAMES], device=self.device)
        self.part_weight_cfg = w
        scale = [float(cfg.exp_sparse_scale.get(n, 1.0)) for n in m.exp_names[: self.num_exp]]
        self.exp_sparse_weights = torch.tensor(scale, device=self.device)
        inner = m.mean[m.landmarks68[_INNER_LANDMARKS]]
        self._inner_lmk_flipped = (inner * torch.tensor([1.0, -1.0, -1.0], device=self.device)).cpu().double()

    def _part_point_set(self, p: int) -> Tensor:
        """[N_p] long model points of part ``p``'s predicted set (FitConfig.part_points)."""
        if self.config.part_points == "vertices":
            return self.model.parts[PART_NAMES[p]]
        return torch.unique(self.part_triangles[p].reshape(-1))

    def _prepare_area_tables(self, full_sets: List[Tensor], kept: List[Tensor], n: int) -> None:
        """Tables of the image-area weights (FitConfig.point_weights == "area").

        ``area_triangles`` [F, 3] are the part triangles of all parts, ``area_owner`` [F, 3] the
        flat index (part * n + position in the part's kept points) owning each corner, or -1 for a
        corner outside the part. A part vertex dropped by the sampling is owned by the nearest
        kept vertex of its part (on the mean shape), so the kept points carry the whole area.
        """
        m = self.model
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

    # ------------------------------------------------------------------ public
    def fit(
        self,
        inputs: Union[Targets, str, np.ndarray, Sequence[Union[Targets, str, np.ndarray]]],
        progress: Optional[ProgressFn] = None,
    ) -> Union[FitResult, List[FitResult]]:
        """Fit one face (returns a FitResult) or a list (returns a list, fitted as one batch).

        Items are :class:`Targets`, or image paths/arrays (the largest face of each is fitted;
        targets are built with ``target_config``). A single input whose fit fails raises
        :class:`FitError`; in a list, a failed face carries ``result.failure`` instead.
        """
        single = isinstance(inputs, (Targets, str, np.ndarray)) or not isinstance(inputs, Sequence)
        items = [inputs] if single else list(inputs)
        if not items:
            return []
        targets = [self._as_targets(x) for x in items]
        results = self.fit_targets(targets, progress)
        if single:
            if results[0].failure:
                raise FitError(f"{targets[0].source or 'input'}: {results[0].failure}")
            return results[0]
        return results

    def evaluate(
        self,
        targets: Targets,
        id_coeffs: np.ndarray,
        exp_coeffs: np.ndarray,
        rotation: np.ndarray,
        translation: np.ndarray,
    ) -> Dict[str, float]:
        """Weighted loss terms of one face at given parameters (no optimization).

        Args:
            id_coeffs [K_id], exp_coeffs [K_exp]: model coefficients; rotation [3, 3] and
            translation [3] (model units) as in ``FitResult`` (perspective camera).
        Returns:
            {term: weighted value} for the active terms, plus ``prdl/<part>`` and ``total``.
        """
        cfg = self.config
        active = cfg.active_losses()
        tb, params, colour = self._fixed_parameters(targets, id_coeffs, exp_coeffs, rotation, translation, active)
        with torch.no_grad():
            _, values, total = self._evaluate(params, colour, tb, active, None, True)
        out = {k: float(v[0]) * cfg.loss_weights[k] for k, v in values.items() if k in TERMS}
        if "prdl_parts" in values:
            out.update({f"prdl/{p}": float(values["prdl_parts"][0, i]) * cfg.loss_weights["prdl"]
                        for i, p in enumerate(PART_NAMES)})
        out["total"] = float(total[0])
        return out

    def prdl_descriptors_at(
        self,
        targets: Targets,
        id_coeffs: np.ndarray,
        exp_coeffs: np.ndarray,
        rotation: np.ndarray,
        translation: np.ndarray,
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """PRDL's two sides for one face at given parameters (arguments as :meth:`evaluate`).

        Returns:
            (Γ [P, A, 3] of the predicted point sets as the fit builds them, Γ* [P, A, 3] of the
            targets, present [P] bool); statistics (f_min, f_max, f_ave) in pixels, anchors as
            ``FitConfig.anchors``, parts in PART_NAMES order.
        """
        tb, params, _ = self._fixed_parameters(targets, id_coeffs, exp_coeffs, rotation, translation, {})
        with torch.no_grad():  # PRDL alone: its point sets and area weights
            ctx, _, _ = self._evaluate(params, None, tb, {"prdl": 1.0}, None, True, parts=True)
            pred = L.prdl_descriptors(ctx.pred_points, tb.anchors, ctx.pred_valid, weights=ctx.pred_weights)
        return pred[0], tb.desc[0], tb.part_present[0]

    def _fixed_parameters(self, targets, id_coeffs, exp_coeffs, rotation, translation, active):
        """(TargetBatch of one face, _Params at the given values, colour or None) for evaluate()."""
        tb = collate_targets([targets], self.config.anchors, self.device,
                             mask_resolution=64 if "sil_iou" in active else None, with_image="pho" in active)
        self._set_camera(tb)
        m = self.model
        f32 = dict(device=self.device, dtype=torch.float32)
        t = torch.as_tensor(np.asarray(translation), **f32).view(1, 3)
        params = _Params(
            z_id=torch.as_tensor(np.asarray(id_coeffs)[: self.num_id], **f32)[None] / m.id_std[: self.num_id],
            z_exp=torch.as_tensor(np.asarray(exp_coeffs)[: self.num_exp], **f32)[None] / m.exp_std[: self.num_exp],
            rot6d=matrix_to_rotation_6d(torch.as_tensor(np.asarray(rotation), **f32)[None]),
            trans_xy=t[:, :2],
            log_depth=t[:, 2:].log(),
        )
        colour = self._init_colour(tb, params) if "pho" in active else None
        return tb, params, colour

    def _set_camera(self, tb: TargetBatch) -> None:
        W, H = tb.size
        self._focal = self.config.focal_224 * W / 224.0
        self._principal = torch.tensor([(W - 1) / 2.0, (H - 1) / 2.0], device=self.device).expand(tb.batch_size, 2)

    def _as_targets(self, item) -> Targets:
        if isinstance(item, Targets):
            return item
        from fitter.targets.pipeline import TargetConfig, build_targets

        found = build_targets(item, self.target_config or TargetConfig())
        if not found:
            raise NoFaceError(f"no face found in {item if isinstance(item, str) else 'image'}")
        return found[0]

    # ------------------------------------------------------------------ the fit
    def fit_targets(self, targets: Sequence[Targets], progress: Optional[ProgressFn] = None) -> List[FitResult]:
        """Fit B faces in one vectorized optimization; returns B results in input order."""
        cfg = self.config
        t0 = time.perf_counter()
        for t in targets:
            t.validate()
        active = cfg.active_losses()
        mask_res = 64 if "sil_iou" in active else None
        tb = collate_targets(targets, cfg.anchors, self.device, mask_resolution=mask_res, with_image="pho" in active)
        B = tb.batch_size
        self._set_camera(tb)
        params = self._init_params(tb)
        colour = self._init_colour(tb, params) if "pho" in active else None

        state = _RunState(B, self.device)
        rigid_terms = {"lmk": max(active.get("lmk", 0.0), 1e-3)}
        total_iters = cfg.rigid_iters + cfg.iters
        stages = [("rigid", rigid_terms, cfg.rigid_iters, [params.rot6d, params.trans_xy, params.log_depth]),
                  ("full", active, cfg.iters, params.tensors() + (list(colour) if colour else []))]
        for stage, terms, n_iter, tensors in stages:
            if n_iter == 0:
                continue
            self._run_stage(stage, terms, n_iter, tensors, params, colour, tb, state, progress, total_iters)

        with torch.no_grad():
            ctx, values, _ = self._evaluate(params, colour, tb, active, state.visible, refresh_visibility=True, parts=True)
        seconds = time.perf_counter() - t0
        return [self._result(b, params, ctx, values, tb, targets[b], state, seconds) for b in range(B)]

    def _run_stage(self, stage, terms, n_iter, tensors, params, colour, tb, state, progress, total_iters) -> None:
        cfg = self.config
        state.begin_stage(tensors)
        opt = self._optimizer(tensors, params, colour)
        sched = None
        if cfg.optimizer == "adam" and cfg.lr_decay < 1.0:
            floor = cfg.lr_decay
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda i: floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(i, n_iter) / n_iter)))
        for it in range(n_iter):
            refresh = it % max(1, cfg.visibility_every) == 0
            record: Dict[str, Tensor] = {}

            def closure():
                opt.zero_grad(set_to_none=True)
                fresh = (refresh and not record) or (cfg.optimizer == "lbfgs")
                ctx, values, total = self._evaluate(params, colour, tb, terms, state.visible, fresh)
                live = (~state.frozen).to(total.dtype)
                finite = torch.isfinite(total)
                loss = torch.where(finite, total, torch.zeros_like(total))
                (loss * live).sum().backward()
                if not record:
                    record["total"] = total.detach()
                    record["values"] = {k: v.detach() for k, v in values.items()}
                    state.visible = _Visibility(ctx.visible, ctx.part_support)
                # a line search must see a non-finite point as very bad, not as a loss of 0
                shown = torch.where(finite, loss.detach(), torch.full_like(loss, _NONFINITE_LOSS))
                return (shown * live).sum()

            opt.step(closure)
            if sched is not None:
                sched.step()
            with torch.no_grad():
                self._project_bounds(params)
                state.after_step(tensors)
            total = record["total"]
            state.log(stage, total, record["values"], self.config.loss_weights)
            state.check(total, cfg.rel_tol, cfg.patience, tensors)
            if cfg.snapshot_every and state.iteration % cfg.snapshot_every == 0:
                with torch.no_grad():
                    ctx, _, _ = self._evaluate(params, colour, tb, {}, state.visible, False)
                state.snapshot(ctx.points_img)
            if progress is not None:
                finite = total[torch.isfinite(total)]
                progress(state.iteration, total_iters, float(finite.mean()) if finite.numel() else float("nan"))
            if bool(state.frozen.all()):
                break
        state.end_stage(tensors)

    def _optimizer(self, tensors, params: _Params, colour) -> torch.optim.Optimizer:
        cfg = self.config
        if cfg.optimizer == "lbfgs":
            # one LBFGS iteration per step; max_eval must be set or the line search gets 1 evaluation
            return torch.optim.LBFGS(tensors, lr=1.0, max_iter=1, max_eval=25, history_size=20, line_search_fn="strong_wolfe",
                                     tolerance_grad=0.0, tolerance_change=0.0)
        pose = {id(params.rot6d), id(params.trans_xy), id(params.log_depth)}
        groups = [
            {"params": [t for t in tensors if id(t) in pose], "lr": cfg.lr * cfg.pose_lr_scale},
            {"params": [t for t in tensors if id(t) not in pose], "lr": cfg.lr},
        ]
        return torch.optim.Adam([g for g in groups if g["params"]])

    def _project_bounds(self, params: _Params) -> None:
        m = self.model
        k = self.num_exp
        std = m.exp_std[:k]
        lo = m.exp_lower[:k] / std
        hi = m.exp_upper[:k] / std
        params.z_exp.data = torch.maximum(torch.minimum(params.z_exp.data, hi), lo)

    # ------------------------------------------------------------------ forward
    def _coeffs(self, params: _Params) -> Tuple[Tensor, Tensor]:
        m = self.model
        return params.z_id * m.id_std[: self.num_id], params.z_exp * m.exp_std[: self.num_exp]

    def _pose(self, params: _Params) -> Tuple[Tensor, Tensor]:
        R = rotation_6d_to_matrix(params.rot6d)
        if self.config.camera == "perspective":
            t = torch.cat([params.trans_xy, params.log_depth.exp()], -1)
        else:
            t = torch.cat([params.trans_xy, torch.zeros_like(params.log_depth)], -1)
        return R, t

    def _project(self, points_cam: Tensor, params: _Params) -> Tensor:
        if self.config.camera == "perspective":
            return project_perspective(points_cam, self._focal, self._principal)
        return project_weak(points_cam, params.log_depth.exp().squeeze(-1), self._principal)

    def _evaluate(self, params, colour, tb: TargetBatch, terms: Dict[str, float], visible, refresh_visibility,
                  parts: Optional[bool] = None):
        """One forward pass: returns (LossContext, unweighted term values {name: [B]}, weighted total [B]).

        ``parts``: compute visibility and the part point sets (None = only when a term needs them).
        """
        m = self.model
        id_c, exp_c = self._coeffs(params)
        verts = m.vertices(id_c, exp_c)
        R, t = self._pose(params)
        pts_cam = model_to_camera(verts, R, t)
        pts_img = self._project(pts_cam, params)
        W, H = tb.size
        needs_parts = parts if parts is not None else any(
            w > 0 and n not in VISIBILITY_FREE_TERMS for n, w in terms.items())
        if needs_parts and (visible is None or visible.points is None or refresh_visibility):
            with torch.no_grad():
                vis, face = zbuffer_visibility(pts_img.detach(), pts_cam[..., 2].detach(), self.all_triangles, (W, H),
                                               return_faces=True)
                support = None
                if self.config.support_radius >= 0:
                    labels = face_labels(face, self.tri_labels)  # the z-buffer's own triangle map
                    support = label_support(labels, pts_img.detach()[:, self.part_index], self.config.support_radius)
                visible = _Visibility(vis, support)
        with torch.no_grad():
            lmk_index = L.march_contour_landmarks(pts_img.detach(), m.contour_candidates, m.landmarks68)
        pred_valid = pred_weights = None
        if needs_parts:
            with torch.no_grad():
                kept, below = self._vertex_valid(pts_img.detach(), visible.points, tb)
                skin = PART_NAMES.index("skin")
                real = self.part_index_valid.unsqueeze(0).expand(len(below), -1, -1).clone()
                real[:, skin] &= below[:, self.part_index[skin]]
                shown = real & kept[:, self.part_index]
                pred_valid = shown & visible.support if visible.support is not None else shown
                pred_valid = _fall_back_when_empty(pred_valid, (shown, real), tb.part_present)
                if self.config.point_weights == "area" and terms.get("prdl", 0) > 0:
                    pred_weights = self._area_weights(pts_img.detach(), kept, below) * pred_valid
        elif visible is None:
            visible = _Visibility(None, None)
        pred_points = pts_img[:, self.part_index]
        part_weights = tb.part_present.to(pts_img.dtype) * self.part_weight_cfg
        ctx = LossContext(
            model=m, target=tb, id_coeffs=id_c, exp_coeffs=exp_c, points_cam=pts_cam, points_img=pts_img,
            visible=visible.points, landmark_index=lmk_index, pred_points=pred_points, pred_valid=pred_valid,
            part_weights=part_weights, part_triangles=self.part_triangles, landmark_weights=self.landmark_weights,
            exp_sparse_weights=self.exp_sparse_weights,
            pred_weights=pred_weights, part_support=visible.support,
        )
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
        if "prdl" in terms and terms["prdl"] > 0:
            values["prdl_parts"] = prdl_per_part(ctx)
        return ctx, values, total

    def _vertex_valid(self, pts_img: Tensor, visible: Tensor, tb: TargetBatch) -> Tuple[Tensor, Tensor]:
        """Per model point [B, V] bool: ``kept`` (visible and not under an occluder) and ``below``
        (below the forehead cut; applies to skin). A predicted part point counts when kept (and,
        for skin, below)."""
        W, H = tb.size
        B, V = pts_img.shape[:2]
        xi = pts_img[..., 0].round().long()
        yi = pts_img[..., 1].round().long()
        inside = (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
        flat = yi.clamp(0, H - 1) * W + xi.clamp(0, W - 1)
        occluded = torch.gather(tb.occlusion.view(B, -1), 1, flat) & inside
        line = tb.forehead_line  # [B, 3]
        below = line[:, None, 0] * pts_img[..., 0] + line[:, None, 1] * pts_img[..., 1] + line[:, None, 2] >= 0
        return visible & ~occluded, below

    def _area_weights(self, pts_img: Tensor, kept: Tensor, below: Tensor) -> Tensor:
        """[B, P, N] image area (pixels²) each kept part point stands for: a share of every part
        triangle whose three corners count (see :mod:`fitter.geometry.areas`)."""
        B = pts_img.shape[0]
        tri = self.area_triangles
        ok = kept[:, tri].all(-1)
        ok &= ~self.area_is_skin | below[:, tri].all(-1)
        area = triangle_areas_2d(pts_img, tri)
        P, N = self.part_index.shape
        return lumped_point_weights(area, ok, self.area_owner, P * N).view(B, P, N)

    # ------------------------------------------------------------------ initialisation
    def _init_params(self, tb: TargetBatch) -> _Params:
        B = tb.batch_size
        dev = self.device
        rot = torch.zeros(B, 3, 3, dtype=torch.float64)
        trans = torch.zeros(B, 3, dtype=torch.float64)
        Y = self._inner_lmk_flipped
        for b in range(B):
            x = tb.landmarks[b, _INNER_LANDMARKS].detach().cpu().double() - self._principal[b].cpu().double()
            ok = tb.landmark_valid[b, _INNER_LANDMARKS].cpu()
            rot[b], trans[b] = _procrustes_weak(Y[ok], x[ok])
        s = trans[:, 2]  # scale in px per model unit
        if self.config.camera == "perspective":
            depth = torch.log(torch.as_tensor(self._focal, dtype=torch.float64) / s)
        else:
            depth = torch.log(s)

        def leaf(x: Tensor) -> Tensor:
            return x.to(device=dev, dtype=torch.float32).clone().requires_grad_(True)

        return _Params(
            z_id=leaf(torch.zeros(B, self.num_id)),
            z_exp=leaf(torch.zeros(B, self.num_exp)),
            rot6d=leaf(matrix_to_rotation_6d(rot)),
            trans_xy=leaf(trans[:, :2]),
            log_depth=leaf(depth.unsqueeze(-1)),
        )

    def _init_colour(self, tb: TargetBatch, params: _Params) -> Tuple[Tensor, Tensor]:
        """Photometric state: albedo (a per-face colour gain when the model has albedo, else a
        uniform colour) [B, 1, 3] and SH lighting [B, 9, 3] (ambient start)."""
        B = tb.batch_size
        img = tb.image
        mean_col = img.mean(dim=(2, 3)).view(B, 1, 3) if self.model.albedo is None else torch.ones(B, 1, 3, device=self.device)
        sh = torch.zeros(B, 9, 3, device=self.device)
        sh[:, 0] = 1.0 / 0.886227  # ambient term so that shading starts at 1
        return mean_col.clone().requires_grad_(True), sh.requires_grad_(True)

    # ------------------------------------------------------------------ results
    def _result(self, b, params, ctx: LossContext, values, tb, target: Targets, state: "_RunState", seconds) -> FitResult:
        m = self.model
        id_c, exp_c = (c.detach() for c in self._coeffs(params))
        id_full = torch.zeros(m.num_id, device=self.device)
        id_full[: self.num_id] = id_c[b]
        exp_full = torch.zeros(m.num_exp, device=self.device)
        exp_full[: self.num_exp] = exp_c[b]
        R, t = (x.detach() for x in self._pose(params))
        verts_model = m.vertices(id_c[b : b + 1], exp_c[b : b + 1])[0]
        idx = ctx.landmark_index[b]
        part_points = {}
        for p, name in enumerate(PART_NAMES):
            sel = ctx.pred_valid[b, p]
            part_points[name] = ctx.pred_points[b, p][sel].detach().cpu().numpy().astype(np.float32)
        final = {k: float(v[b]) * self.config.loss_weights[k] for k, v in values.items() if k in TERMS}
        final["total"] = float(sum(final.values()))
        W, H = tb.size
        kind = self.config.camera
        focal = float(self._focal) if kind == "perspective" else float(params.log_depth[b].detach().exp())
        np32 = lambda x: x.detach().cpu().numpy().astype(np.float32)  # noqa: E731
        failure = state.failure[b]
        if failure is None and not np.isfinite(final["total"]):
            failure = "the loss is not finite at the end of the fit"
        return FitResult(
            model_name=m.name,
            exp_names=list(m.exp_names),
            id_coeffs=np32(id_full),
            exp_coeffs=np32(exp_full),
            rotation=np32(R[b]),
            translation=np32(t[b]),
            euler_deg=np.degrees(np32(matrix_to_euler(R[b]))),
            camera=Camera(kind, focal, float(self._principal[b, 0]), float(self._principal[b, 1]), W, H),
            vertices_model=np32(verts_model),
            vertices_camera=np32(ctx.points_cam[b]),
            vertices_image=np32(ctx.points_img[b]),
            visible=ctx.visible[b].cpu().numpy().astype(bool),
            landmarks2d=np32(ctx.points_img[b, idx]),
            landmarks3d=np32(ctx.points_cam[b, idx]),
            part_points=part_points,
            history=state.histories[b],
            converged=bool(state.converged_at[b] is not None),
            iterations=int(state.iterations[b]),
            seconds=seconds,
            final_losses=final,
            targets=target,
            config=self.config.to_dict(),
            snapshots=state.snapshots[b],
            failure=failure,
        )


def _procrustes_weak(Y: Tensor, x: Tensor) -> Tuple[Tensor, Tensor]:
    """Closed-form weak-perspective fit x ≈ s·R[:2]·Y + a.

    Args:
        Y: [N, 3] model landmarks (already flipped to camera axes). x: [N, 2] image points
            relative to the principal point.
    Returns:
        R [3, 3] rotation and (a_x / s, a_y / s, s): translation in model units and the scale
        (pixels per model unit).
    """
    Yc = Y - Y.mean(0)
    xc = x - x.mean(0)
    A = torch.linalg.lstsq(Yc, xc).solution.T  # [2, 3]
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    R2 = U @ Vh
    s = S.mean()
    r3 = torch.linalg.cross(R2[0], R2[1])
    R = torch.stack([R2[0], R2[1], r3])
    a = x.mean(0) - s * (R2 @ Y.mean(0))
    return R, torch.stack([a[0] / s, a[1] / s, s])


class _RunState:
    """Book-keeping of a batched run: iteration counter, per-face convergence, history, freezing."""

    def __init__(self, B: int, device: torch.device):
        self.B = B
        self.iteration = 0
        self.visible: Optional[_Visibility] = None
        self.frozen = torch.zeros(B, dtype=torch.bool, device=device)
        self.failed = torch.zeros(B, dtype=torch.bool, device=device)
        self.calm = torch.zeros(B, dtype=torch.long, device=device)
        self.prev: Optional[Tensor] = None
        self.histories = [LossHistory() for _ in range(B)]
        self.iterations = [0] * B
        self.converged_at: List[Optional[int]] = [None] * B
        self.failure: List[Optional[str]] = [None] * B
        self.snapshots: List[list] = [[] for _ in range(B)]
        self._frozen_values: List[Tensor] = []
        self._last_good: List[Tensor] = []

    def begin_stage(self, tensors: List[Tensor]) -> None:
        self.frozen = self.failed.clone()
        self.calm.zero_()
        self.prev = None
        self.converged_at = [None] * self.B
        self._frozen_values = [t.detach().clone() for t in tensors]
        self._last_good = [t.detach().clone() for t in tensors]
        self.best = torch.full((self.B,), float("inf"), device=self.frozen.device)
        self._best_values = [t.detach().clone() for t in tensors]

    def end_stage(self, tensors: List[Tensor]) -> None:
        """Leave every face at the parameters of its lowest logged objective in this stage (a
        late Adam wobble or an L-BFGS step into a worse region is not kept)."""
        has = torch.isfinite(self.best)
        for t, best in zip(tensors, self._best_values):
            if t.dim() and t.shape[0] == self.B and bool(has.any()):
                t.data[has] = best[has]

    def after_step(self, tensors: List[Tensor]) -> None:
        """Undo the step for frozen faces (converged or failed)."""
        for t, keep in zip(tensors, self._frozen_values):
            if t.dim() and t.shape[0] == self.B and bool(self.frozen.any()):
                t.data[self.frozen] = keep[self.frozen]

    def log(self, stage: str, total: Tensor, values: Dict[str, Tensor], weights: Dict[str, float]) -> None:
        self.iteration += 1
        names = [k for k in weights if weights[k] > 0]
        cols = {"total": total}
        for k in names:
            cols[k] = values[k] * weights[k] if k in values else torch.zeros_like(total)
        parts = values.get("prdl_parts")
        if "prdl" in names:
            for p, name in enumerate(PART_NAMES):
                cols[f"prdl/{name}"] = parts[:, p] * weights["prdl"] if parts is not None else torch.zeros_like(total)
        keys = list(cols)
        table = torch.stack([cols[k].detach().float() for k in keys], -1).cpu().tolist()
        frozen = self.frozen.tolist()
        for b in range(self.B):
            if frozen[b]:
                continue
            row: Dict[str, object] = {"iteration": self.iteration, "stage": stage}
            row.update(zip(keys, table[b]))
            self.histories[b].rows.append(row)  # type: ignore[arg-type]
            self.iterations[b] = self.iteration

    def check(self, total: Tensor, rel_tol: float, patience: int, tensors: List[Tensor]) -> None:
        """Early stopping per face, NaN handling, best-so-far and the freeze bookkeeping.

        ``total`` was evaluated at the parameters before this step, which ``_last_good`` holds.
        """
        finite = torch.isfinite(total)
        better = finite & ~self.frozen & (total < self.best)
        if bool(better.any()):
            self.best = torch.where(better, total, self.best)
            for best, good in zip(self._best_values, self._last_good):
                if best.dim() and best.shape[0] == self.B:
                    best[better] = good[better]
        bad = ~finite & ~self.frozen
        if bool(bad.any()):
            for b in torch.nonzero(bad).flatten().tolist():
                self.failure[b] = f"the loss became NaN/inf at iteration {self.iteration}"
            self.failed |= bad
            for t, good in zip(tensors, self._last_good):
                if t.dim() and t.shape[0] == self.B:
                    t.data[bad] = good[bad]
            self._freeze(bad, tensors)
        if self.prev is not None:
            rel = (self.prev - total).abs() / self.prev.abs().clamp_min(1e-12)
            calm = finite & (rel < rel_tol)
            self.calm = torch.where(calm, self.calm + 1, torch.zeros_like(self.calm))
            newly = (self.calm >= patience) & ~self.frozen
            if bool(newly.any()):
                for b in torch.nonzero(newly).flatten().tolist():
                    self.converged_at[b] = self.iteration
                self._freeze(newly, tensors)
        self.prev = torch.where(finite, total, self.prev if self.prev is not None else total)
        ok = finite & ~self.frozen
        for t, good in zip(tensors, self._last_good):
            if t.dim() and t.shape[0] == self.B:
                good[ok] = t.detach()[ok]

    def _freeze(self, mask: Tensor, tensors: List[Tensor]) -> None:
        for t, keep in zip(tensors, self._frozen_values):
            if t.dim() and t.shape[0] == self.B:
                keep[mask] = t.detach()[mask]
        self.frozen |= mask

    def snapshot(self, points_img: Tensor) -> None:
        pts = points_img.detach().cpu().numpy().astype(np.float32)
        for b in range(self.B):
            self.snapshots[b].append((self.iteration, pts[b]))
