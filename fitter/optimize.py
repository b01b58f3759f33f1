"""Fit a morphable model to one or many faces: :class:`Fitter`, a façade over :mod:`fitter.fit`.

Stages (each with per-face early stopping on the relative change of its loss):

1. ``rigid``: a closed-form weak-perspective Procrustes solution from the inner 51 landmarks, then
   rotation + translation refined on the landmark term alone.
2. ``full``: identity, expression, rotation and translation on every active term of
   ``FitConfig.loss_weights`` (PRDL + landmarks + priors by default).

N faces are fitted in one vectorized optimization: every tensor carries the batch dimension, each
face's loss depends on its own parameters only, and a face that has converged (or hit NaN) is frozen
while the others go on. The optimizer reads and writes no files. Parametrization:
:mod:`fitter.fit.params`; cameras: :mod:`fitter.geometry.cameras`.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from fitter import losses as L
from fitter.config import FitConfig, resolve_device
from fitter.errors import FitError, NoFaceError
from fitter.fit.forward import ForwardPass
from fitter.fit.loop import ProgressFn, Stage, run_stage
from fitter.fit.params import ParamSpace
from fitter.fit.point_sets import PartTables
from fitter.fit.results import face_result
from fitter.fit.run_state import RunState
from fitter.geometry.cameras import FittingCamera, camera_for_crop
from fitter.geometry.sampling import farthest_point_sample
from fitter.objective import Needs, TargetBatch, collate_targets, weighted_terms
from fitter.result import FitResult
from fitter.targets.types import Targets
from morphable_models.frontend_parts import own_parts
from morphable_models.landmark_embedding import own_landmarks
from morphable_models.lid_scaling import with_lid_scaled_blinks, without_exp_scale
from morphable_models.model import PART_NAMES, MorphableModel

__all__ = ["Fitter", "ProgressFn", "model_as_fitted"]

Inputs = Union[Targets, str, np.ndarray]


def model_as_fitted(model: MorphableModel, config: FitConfig) -> MorphableModel:
    """``model`` with the landmark and part definitions ``config`` picks (``model_landmarks``,
    ``model_parts``) and its blinks as ``blink_scale`` says: what a :class:`Fitter` fits, and what its
    outputs must be drawn with."""
    if config.model_landmarks == "vertices":
        model = own_landmarks(model)
    if config.model_parts == "rules":
        model = own_parts(model)
    model = with_lid_scaled_blinks(model) if config.blink_scale == "identity" else without_exp_scale(model)
    return model


class Fitter:
    """Fit ``model`` to faces. ``Fitter(model, config).fit(targets_or_image)``.

    Args:
        model: the morphable model (moved to the fitting device).
        config: a :class:`FitConfig` (default settings).
        target_config: options of the image front end, used when ``fit`` gets an image.
    """

    def __init__(self, model: MorphableModel, config: Optional[FitConfig] = None, target_config=None):
        cfg = self.config = config or FitConfig()
        self.device = torch.device(resolve_device(cfg.device))
        self.model = m = model_as_fitted(model, cfg).to(self.device, dtype=torch.float32)
        self.target_config = target_config
        torch.manual_seed(cfg.seed)
        self.space = ParamSpace(m, cfg.num_id, cfg.num_exp)
        self.tables = PartTables(m, cfg.part_points, cfg.max_part_points, cfg.max_skin_points)
        dev = self.device
        self.forward = ForwardPass(
            self.space, self.tables,
            part_weights=torch.tensor([float(cfg.part_weights.get(p, 1.0)) for p in PART_NAMES], device=dev),
            landmark_weights=L.default_landmark_weights(jaw=cfg.jaw_landmark_weight).to(dev),
            exp_sparse_weights=torch.tensor([float(cfg.exp_sparse_scale.get(n, 1.0))
                                             for n in m.exp_names[: self.space.num_exp]], device=dev),
            support_radius=cfg.support_radius, area_weights=cfg.point_weights == "area",
            profile_id_gain=cfg.profile_id_prior, exp_sparse_gamma=cfg.exp_sparse_gamma,
            mesh_point_weights=self._mesh_point_weights(cfg), profile_exp_gain=cfg.profile_exp_prior,
            shading_table=self._shading_table(cfg), profile_jaw=cfg.profile_jaw_weight)

    # ------------------------------------------------------------------ public
    def fit(self, inputs: Union[Inputs, Sequence[Inputs]],
            progress: Optional[ProgressFn] = None) -> Union[FitResult, List[FitResult]]:
        """Fit one face (returns a FitResult) or a list (returns a list, fitted as one batch).

        Items are :class:`Targets`, or image paths/arrays (the largest face of each is fitted;
        targets are built with ``target_config``). A single input whose fit fails raises
        :class:`FitError`; in a list, a failed face carries ``result.failure`` instead.
        """
        single = isinstance(inputs, (Targets, str, np.ndarray))
        if not single and not isinstance(inputs, (list, tuple)):
            raise TypeError(f"fit() takes a Targets, an image path or array, or a list of them; got {type(inputs).__name__}")
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

    def fit_targets(self, targets: Sequence[Targets], progress: Optional[ProgressFn] = None) -> List[FitResult]:
        """Fit B faces in one vectorized optimization; returns B results in input order."""
        cfg = self.config
        t0 = time.perf_counter()
        for t in targets:
            t.validate()
        active = cfg.active_losses()
        tb, camera = self._batch(targets, active)
        params = self.space.initial(tb.landmarks, tb.landmark_valid, camera)
        colour = self.forward.initial_colour(tb) if Needs.of(active).image else None
        state = RunState(tb.batch_size, self.device)
        stages = [Stage("rigid", {"lmk": max(active.get("lmk", 0.0), 1e-3)}, cfg.rigid_iters, params.pose_tensors()),
                  Stage("full", active, cfg.iters, params.tensors() + (list(colour) if colour else []))]
        for stage in stages:
            if stage.iters:
                run_stage(stage, self.forward, params, tb, camera, colour, state, cfg, progress,
                          cfg.rigid_iters + cfg.iters)
        with torch.no_grad():
            final = self.forward(params, tb, camera, active, colour, state.visible, refresh=True, point_sets=True)
        seconds = time.perf_counter() - t0
        return [face_result(b, self.space, params, camera, final, tb, targets[b], state, cfg, seconds)
                for b in range(tb.batch_size)]

    def evaluate(self, targets: Targets, id_coeffs: np.ndarray, exp_coeffs: np.ndarray, rotation: np.ndarray,
                 translation: np.ndarray) -> Dict[str, float]:
        """Weighted loss terms of one face at given parameters (no optimization).

        Args:
            id_coeffs [K_id], exp_coeffs [K_exp]: model coefficients; rotation [3, 3] and
            translation [3] (model units) as in ``FitResult`` (perspective camera).
        Returns:
            {"total", term: weighted value} for the active terms, plus ``prdl/<part>``.
        """
        active = self.config.active_losses()
        tb, camera = self._batch([targets], active, kind="perspective")
        params = self.space.at_values(id_coeffs, exp_coeffs, rotation, translation)
        colour = self.forward.initial_colour(tb) if Needs.of(active).image else None
        with torch.no_grad():
            ev = self.forward(params, tb, camera, active, colour, None, refresh=True, point_sets=True)
        return {k: float(v[0]) for k, v in weighted_terms(ev.values, self.config.loss_weights).items()}

    def prdl_descriptors_at(self, targets: Targets, id_coeffs: np.ndarray, exp_coeffs: np.ndarray,
                            rotation: np.ndarray, translation: np.ndarray) -> Tuple[Tensor, Tensor, Tensor]:
        """PRDL's two sides for one face at given parameters (arguments as :meth:`evaluate`).

        Returns:
            (Γ [P, A, 3] of the predicted point sets as the fit builds them, Γ* [P, A, 3] of the
            targets, present [P] bool); statistics (f_min, f_max, f_ave) in pixels, anchors as
            ``FitConfig.anchors``, parts in PART_NAMES order.
        """
        tb, camera = self._batch([targets], {}, kind="perspective")
        params = self.space.at_values(id_coeffs, exp_coeffs, rotation, translation)
        with torch.no_grad():  # PRDL alone: its point sets and area weights
            ctx = self.forward(params, tb, camera, {"prdl": 1.0}, None, None, refresh=True, point_sets=True).context
            pred = L.prdl_descriptors(ctx.pred_points, tb.anchors, ctx.pred_valid, weights=ctx.pred_weights)
        return pred[0], tb.desc[0], tb.part_present[0]

    # ------------------------------------------------------------------ helpers
    def _mesh_point_weights(self, cfg: FitConfig) -> Optional[Tensor]:
        """[478] factors of the mesh term from ``cfg.mesh_region_weights`` (None when there are none
        or the term is off)."""
        if not cfg.mesh_region_weights or cfg.loss_weights.get("mesh_lmk", 0) <= 0:
            return None
        from fitter.targets.mediapipe_regions import mesh_point_weights

        return torch.from_numpy(mesh_point_weights(cfg.mesh_region_weights)).to(self.device)

    def _shading_table(self, cfg: FitConfig) -> Optional[L.ShadingTable]:
        """The shading term's triangles: those of the model's skin and nose (all three corners there:
        one skin colour), at most ``SHADING_TRIANGLES`` spread by farthest-point sampling of their
        centroids on the mean face (None when the term is off)."""
        if cfg.loss_weights.get("shading", 0) <= 0:
            return None
        m = self.model
        skin = torch.zeros(m.num_points, dtype=torch.bool, device=self.device)
        skin[torch.cat([m.parts["skin"], m.parts["nose"]]).to(self.device)] = True
        tri = m.triangles[skin[m.triangles].all(1)]
        if len(tri) > L.SHADING_TRIANGLES:
            tri = tri[farthest_point_sample(m.mean[tri].mean(1), L.SHADING_TRIANGLES)]
        return L.ShadingTable.build(tri, m.exp_basis)

    def _batch(self, targets: Sequence[Targets], terms: Dict[str, float],
               kind: Optional[str] = None) -> Tuple[TargetBatch, FittingCamera]:
        """The padded targets (with what ``terms`` need) and their camera (``kind`` or the config's)."""
        needs = Needs.of(terms)
        tb = collate_targets(targets, self.config.anchors, self.device, mask_resolution=needs.mask_resolution,
                             with_image=needs.some_image, image_optional=not needs.image)
        camera = camera_for_crop(kind or self.config.camera, tb.size, tb.batch_size, self.device, self.config.focal_224)
        return tb, camera

    def _as_targets(self, item: Inputs) -> Targets:
        if isinstance(item, Targets):
            return item
        from fitter.targets.pipeline import TargetConfig, build_targets

        found = build_targets(item, self.target_config or TargetConfig())
        if not found:
            raise NoFaceError(f"no face found in {item if isinstance(item, str) else 'image'}")
        return found[0]

