"""One face's :class:`~fitter.result.FitResult` from the batch's final forward pass (host numpy)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from fitter.config import FitConfig
from fitter.fit.forward import Evaluation
from fitter.fit.params import FaceParams, ParamSpace
from fitter.fit.run_state import RunState
from fitter.geometry.cameras import FittingCamera
from fitter.geometry.rotation import matrix_to_euler
from fitter.objective import TargetBatch, weighted_terms
from fitter.result import Camera, FitResult
from fitter.targets.types import Targets
from morphable_models.model import PART_NAMES


def _np32(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float32)


def face_result(b: int, space: ParamSpace, params: FaceParams, camera: FittingCamera, final: Evaluation,
                tb: TargetBatch, target: Targets, state: RunState, cfg: FitConfig, seconds: float) -> FitResult:
    """The result of face ``b``: coefficients padded to the model's full counts, pose, the final
    mesh in model / camera / image space, landmarks after contour marching, the counted part
    points, the weighted final terms, history and snapshots; ``failure`` set when the run failed
    or the final objective is not finite."""
    m = space.model
    ctx = final.context
    id_c, exp_c = (c.detach() for c in space.coeffs(params))
    id_full = torch.zeros(m.num_id, device=id_c.device)
    id_full[: space.num_id] = id_c[b]
    exp_full = torch.zeros(m.num_exp, device=exp_c.device)
    exp_full[: space.num_exp] = exp_c[b]
    R, t = (x.detach() for x in space.pose(params, camera))
    verts_model = m.vertices(id_c[b : b + 1], exp_c[b : b + 1])[0]
    idx = ctx.landmark_index[b]
    part_points = {name: ctx.pred_points[b, p][ctx.pred_valid[b, p]].detach().cpu().numpy().astype(np.float32)
                   for p, name in enumerate(PART_NAMES)}
    weighted = weighted_terms(final.values, {k: w for k, w in cfg.loss_weights.items() if k in final.values},
                              per_part=False)
    losses = {k: float(v[b]) for k, v in weighted.items() if k != "total"}
    losses["total"] = float(weighted["total"][b])
    W, H = tb.size
    failure: Optional[str] = state.failure[b]
    if failure is None and not np.isfinite(losses["total"]):
        failure = "the loss is not finite at the end of the fit"
    principal = camera.principal[b]
    return FitResult(
        model_name=m.name,
        exp_names=list(m.exp_names),
        id_coeffs=_np32(id_full),
        exp_coeffs=_np32(exp_full),
        rotation=_np32(R[b]),
        translation=_np32(t[b]),
        euler_deg=np.degrees(_np32(matrix_to_euler(R[b]))),
        camera=Camera(camera.kind, camera.focal_of(params.log_depth[b]), float(principal[0]), float(principal[1]), W, H),
        vertices_model=_np32(verts_model),
        vertices_camera=_np32(ctx.points_cam[b]),
        vertices_image=_np32(ctx.points_img[b]),
        visible=ctx.visible[b].cpu().numpy().astype(bool),
        landmarks2d=_np32(ctx.points_img[b, idx]),
        landmarks3d=_np32(ctx.points_cam[b, idx]),
        part_points=part_points,
        history=state.histories[b],
        converged=bool(state.converged_at[b] is not None),
        iterations=int(state.iterations[b]),
        seconds=seconds,
        final_losses=losses,
        targets=target,
        config=cfg.to_dict(),
        snapshots=state.snapshots[b],
        failure=failure,
    )
