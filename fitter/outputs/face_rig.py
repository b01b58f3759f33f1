"""The fitted face as an animation rig: the identity at zero expression plus expression morph targets.

Everything is in model space (+X the person's own left, +Y up, +Z towards the viewer), on the
``model.num_mesh_vertices`` mesh vertices (virtual points dropped), in model units unless a
function says metres.

Targets. For a model with an ARKit mapping (:meth:`MorphableModel.arkit_sources`) each ARKit shape
the model has becomes one target named by its ARKit name (ICT-FaceKit: 51, all but ``tongueOut``),
with the fitted coefficient as its weight. A shape that the model splits into a left and a right
half (ICT's ``browInnerUp``, ``cheekPuff``) becomes the whole shape ``L + R`` with the mean weight
``(w_L + w_R) / 2`` (the ARKit weight, see :mod:`morphable_models.arkit`) plus one extra target
``<name>_leftMinusRight`` = ``L - R`` with weight ``(w_L - w_R) / 2``; since
``w_L L + w_R R = (w_L + w_R)/2 (L + R) + (w_L - w_R)/2 (L - R)``, the targets at their weights
give back the fitted mesh exactly, and an ARKit-driven rig that sets only the ARKit names still
gets the symmetric shape. A model without an ARKit mapping gets its own expression shapes, named
by ``exp_names``. Where the model scales its blinks by the identity (:mod:`morphable_models.lid_scaling`),
the fitted identity's factors are baked into those targets, so the weights stay the fitted ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import numpy as np
import torch

from fitter.outputs.fitted_mesh import check_result_matches_model
from fitter.palette import label_colors
from fitter.result import FitResult
from morphable_models.model import MorphableModel

ASYMMETRY_SUFFIX = "_leftMinusRight"


@dataclass
class FaceRig:
    """The neutral fitted identity and its morph targets.

    Attributes:
        neutral: [N, 3] float32 identity at zero expression, model space, model units.
        triangles: [F, 3] int64 mesh triangles.
        labels: [N] int64 part label per vertex (0 none, i + 1 = PART_NAMES[i]).
        targets: [K, N, 3] float32 displacement of each morph target, model units.
        target_names: K names (ARKit names, ``*_leftMinusRight`` asymmetries, or ``exp_names``).
        weights: [K] float32 the fitted weight of each target.
        units: model units; mm_per_unit: millimetres per unit.
    """

    neutral: np.ndarray
    triangles: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    target_names: List[str]
    weights: np.ndarray
    units: str
    mm_per_unit: float

    @property
    def colors(self) -> np.ndarray:
        """[N, 3] uint8 RGB part colour per vertex."""
        return label_colors(self.labels)

    @property
    def metres_per_unit(self) -> float:
        return self.mm_per_unit / 1000.0

    def posed(self, weights: np.ndarray = None) -> np.ndarray:
        """[N, 3] neutral + sum_k weights[k] * targets[k] (default: the fitted weights), model units."""
        w = self.weights if weights is None else np.asarray(weights, dtype=np.float32)
        return self.neutral + np.einsum("k,knc->nc", w.astype(np.float64), self.targets).astype(np.float32)


def _targets(model: MorphableModel, exp: np.ndarray, n: int, id_coeffs=None):
    """(deltas [K, N, 3], names, weights [K]) of the rig's morph targets (see module docstring).
    A model whose blinks scale with the identity (:mod:`morphable_models.lid_scaling`) has the fitted
    identity's factors baked into those shapes (``id_coeffs`` [1, K_id])."""
    basis = model.exp_basis[:, :n].detach().cpu().numpy().astype(np.float32)
    if model.exp_scale is not None and id_coeffs is not None:
        with torch.no_grad():
            ones = torch.ones(1, model.num_exp, dtype=model.exp_basis.dtype, device=model.device)
            factor = model.effective_exp(id_coeffs.to(model.exp_basis.dtype), ones)[0].cpu().numpy()
        basis = basis * factor.astype(np.float32)[:, None, None]
    sources = model.arkit_sources()
    if sources is None:
        return basis, list(model.exp_names), exp.astype(np.float32)
    deltas, names, weights = [], [], []
    for arkit, idx in sources.items():
        if len(idx) == 1:
            deltas.append(basis[idx[0]])
            names.append(arkit)
            weights.append(exp[idx[0]])
        elif len(idx) == 2:
            left, right = idx
            deltas.append(basis[left] + basis[right])
            names.append(arkit)
            weights.append(0.5 * (exp[left] + exp[right]))
            deltas.append(basis[left] - basis[right])
            names.append(arkit + ASYMMETRY_SUFFIX)
            weights.append(0.5 * (exp[left] - exp[right]))
        elif idx:
            raise ValueError(f"{model.name}: ARKit shape {arkit} has {len(idx)} sources; at most 2 are supported")
    return np.stack(deltas), names, np.asarray(weights, np.float32)


def face_rig(result: FitResult, model: MorphableModel) -> FaceRig:
    """The rig of ``result``: identity from ``result.id_coeffs``, weights from ``result.exp_coeffs``."""
    check_result_matches_model(result, model)
    n = model.num_mesh_vertices
    id_coeffs = torch.as_tensor(np.asarray(result.id_coeffs, np.float32), device=model.device)[None]
    with torch.no_grad():
        neutral = model.vertices(id_coeffs, None)[0, :n].cpu().numpy().astype(np.float32)
    exp = np.asarray(result.exp_coeffs, dtype=np.float64).reshape(-1)
    if len(exp) != model.num_exp:
        raise ValueError(f"the fit has {len(exp)} expression coefficients, model {model.name!r} {model.num_exp}")
    deltas, names, weights = _targets(model, exp, n, id_coeffs)
    return FaceRig(neutral=neutral, triangles=model.triangles.cpu().numpy().astype(np.int64),
                   labels=model.part_labels().cpu().numpy()[:n].astype(np.int64), targets=deltas,
                   target_names=names, weights=weights, units=model.units, mm_per_unit=float(model.mm_per_unit))


def rig_summary(rig: FaceRig) -> Dict[str, object]:
    """What a ``face.glb`` holds, for its asset extras and fit.json readers."""
    return {"space": "model space: +X the person's left, +Y up, +Z towards the viewer",
            "units": "metres", "base": "fitted identity, zero expression",
            "targets": len(rig.target_names), "vertex_colors": "part colours (linear RGB)"}
