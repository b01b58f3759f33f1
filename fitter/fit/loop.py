"""The iterations of one stage: the optimizer, its learning-rate schedule, and the step loop.

Each iteration evaluates the stage's terms on the faces still live (visibility refreshed every
``visibility_every`` iterations; converged and failed faces leave the compute,
:mod:`fitter.fit.live`), steps the optimizer on the sum of their objectives, projects the expression
bounds, logs, and checks early stopping (:class:`~fitter.fit.run_state.RunState`,
:mod:`fitter.fit.stopping`). Adam uses two
parameter groups (pose at ``lr * pose_lr_scale``) and an optional cosine decay to ``lr_decay`` of
the rate; L-BFGS does one strong-Wolfe iteration per step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional

import torch
from torch import Tensor

from fitter.config import FitConfig
from fitter.fit.adam import Adam
from fitter.fit.forward import Colour, ForwardPass
from fitter.fit.live import LiveBatch
from fitter.fit.params import FaceParams
from fitter.fit.run_state import RunState
from fitter.fit.stopping import EarlyStop
from fitter.geometry.cameras import FittingCamera
from fitter.objective import Needs, TargetBatch

#: progress(iteration, total_iterations, mean_loss)
ProgressFn = Callable[[int, int, float], None]

#: objective value reported to the optimizer for a face whose loss is NaN/inf (its gradient is 0).
NONFINITE_LOSS = 1e12


@dataclass
class Stage:
    """One stage of the fit: its name, its terms (name → λ), its iteration cap, what it moves."""

    name: str
    terms: Mapping[str, float]
    iters: int
    tensors: List[Tensor]


def make_optimizer(cfg: FitConfig, tensors: List[Tensor], pose: List[Tensor]):
    """The stage's optimizer over ``tensors``; those in ``pose`` get Adam's pose learning rate.

    Adam is :class:`fitter.fit.adam.Adam` (torch's update without importing the compiler stack)."""
    if cfg.optimizer == "lbfgs":
        # one LBFGS iteration per step; max_eval must be set or the line search gets 1 evaluation
        return torch.optim.LBFGS(tensors, lr=1.0, max_iter=1, max_eval=25, history_size=20, line_search_fn="strong_wolfe",
                                 tolerance_grad=0.0, tolerance_change=0.0)
    pose_ids = {id(t) for t in pose}
    groups = [
        {"params": [t for t in tensors if id(t) in pose_ids], "lr": cfg.lr * cfg.pose_lr_scale},
        {"params": [t for t in tensors if id(t) not in pose_ids], "lr": cfg.lr},
    ]
    return Adam([g for g in groups if g["params"]])


def lr_factor(cfg: FitConfig, it: int, n_iter: int) -> float:
    """Adam's rate at iteration ``it`` of ``n_iter`` as a factor of the base rate: a cosine decay
    from 1 to ``lr_decay`` (1 throughout when ``lr_decay`` ≥ 1)."""
    if cfg.lr_decay >= 1.0:
        return 1.0
    floor = cfg.lr_decay
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(it, n_iter) / n_iter))


def run_stage(stage: Stage, forward: ForwardPass, params: FaceParams, tb: TargetBatch, camera: FittingCamera,
              colour: Optional[Colour], state: RunState, cfg: FitConfig, progress: Optional[ProgressFn] = None,
              total_iters: int = 0) -> None:
    """Run ``stage`` on the batch, updating ``params`` in place and recording into ``state``."""
    tensors = stage.tensors
    # what the stage does not move needs no gradient: in the rigid stage the shape is then a
    # constant, computed once (ForwardPass reuses it) and left out of every backward pass
    held = [t for t in params.tensors() if t.requires_grad and not any(t is s for s in tensors)]
    for t in held:
        t.requires_grad_(False)
    try:
        _iterate(stage, forward, params, tb, camera, colour, state, cfg, progress, total_iters)
    finally:
        for t in held:
            t.requires_grad_(True)


def _iterate(stage: Stage, forward: ForwardPass, params: FaceParams, tb: TargetBatch, camera: FittingCamera,
             colour: Optional[Colour], state: RunState, cfg: FitConfig, progress: Optional[ProgressFn],
             total_iters: int) -> None:
    """The step loop of :func:`run_stage`."""
    tensors = stage.tensors
    state.begin_stage(tensors, EarlyStop(state.B, state.frozen.device, cfg.rel_tol, cfg.patience))
    opt = make_optimizer(cfg, tensors, params.pose_tensors())
    base_lr = [g["lr"] for g in opt.param_groups]
    decay = cfg.optimizer == "adam" and cfg.lr_decay < 1.0
    sees = Needs.of(stage.terms).point_sets  # the stage refreshes visibility and point sets
    batch = LiveBatch(tb, camera)
    for it in range(stage.iters):
        if decay:
            for g, lr in zip(opt.param_groups, base_lr):
                g["lr"] = lr * lr_factor(cfg, it, stage.iters)
        refresh = it % max(1, cfg.visibility_every) == 0
        record: Dict[str, object] = {}

        def closure():
            opt.zero_grad(set_to_none=True)
            fresh = (refresh and not record) or (cfg.optimizer == "lbfgs")
            # the live faces only (frozen ones leave the compute; see fitter.fit.live)
            live_total, total, values, seen = batch.evaluate(forward, params, stage.terms, colour, state.visible,
                                                             fresh, sees, state.frozen, state.prev)
            finite = torch.isfinite(live_total)
            loss = torch.where(finite, live_total, torch.zeros_like(live_total))
            loss.sum().backward()
            if not record:
                record["total"] = total.detach()
                record["values"] = {k: v.detach() for k, v in values.items()}
                state.visible = seen
            # a line search must see a non-finite point as very bad, not as a loss of 0
            shown = torch.where(finite, loss.detach(), torch.full_like(loss, NONFINITE_LOSS))
            return shown.sum()

        opt.step(closure)
        with torch.no_grad():
            forward.space.project_bounds(params)
            state.after_step(tensors)
        total = record["total"]
        state.log(stage.name, record["values"], cfg.loss_weights)
        state.check(total, tensors, refreshed=refresh and sees)
        if cfg.snapshot_every and state.iteration % cfg.snapshot_every == 0:
            with torch.no_grad():
                ev = forward(params, tb, camera, {}, colour, state.visible, False, point_sets=False)
            state.snapshot(ev.context.points_img)
        if progress is not None:
            finite = total[torch.isfinite(total)]
            progress(state.iteration, total_iters, float(finite.mean()) if finite.numel() else float("nan"))
        if bool(state.frozen.all()):
            break
    state.end_stage(tensors)
