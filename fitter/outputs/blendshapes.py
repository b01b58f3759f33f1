"""``blendshapes.json``: the fitted expression as the 52 ARKit blendshape weights, plus head pose.

Written only for models that declare an ARKit mapping (:meth:`MorphableModel.arkit_sources`; the
mapping table and the rule for ICT's left/right splits are in :mod:`morphable_models.arkit`).
Content::

    {"format": "prdlfit-blendshapes", "format_version": 1,
     "model": "ict",
     "blendshapes": {"eyeBlinkLeft": 0.12, ..., "tongueOut": 0.0},   # 52 names, weights in [0, 1]
     "sources": {"browInnerUp": ["browInnerUp_L", "browInnerUp_R"], ...},  # model shapes per name
     "split_rule": "mean",
     "head_pose": {"pitch": ..., "yaw": ..., "roll": ..., "units": "degrees", "convention": ...}}

Each weight is the model's coefficient (the mean of the two for a split), clipped to [0, 1]; a
shape the model lacks (ICT: ``tongueOut``) is 0. The head pose is fit.json's ``pose.euler_deg``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from fitter.outputs.atomic import PathLike
from fitter.outputs.fit_files import read_json, write_json
from fitter.result import FitResult
from morphable_models.arkit import ARKIT_NAMES, SPLIT_RULE, combine
from morphable_models.model import MorphableModel

FORMAT = "prdlfit-blendshapes"
FORMAT_VERSION = 1

#: how pitch, yaw and roll are defined (see fitter.geometry.rotation)
POSE_CONVENTION = ("R = Rz(roll) @ Ry(yaw) @ Rx(pitch) in the camera frame (x right, y down, z forward); "
                   "positive yaw turns the nose towards the person's right, positive pitch tilts it down, "
                   "positive roll is clockwise in the image (see fitter.geometry.rotation)")


def arkit_weights(exp_coeffs: np.ndarray, sources: Mapping[str, Tuple[int, ...]]) -> Dict[str, float]:
    """The 52 ARKit weights in [0, 1] from a model's expression coefficients.

    Args:
        exp_coeffs: [K_exp] fitted coefficients.
        sources: ARKit name -> coefficient indices (``MorphableModel.arkit_sources()``).
    Returns:
        ARKit name -> weight, all of :data:`ARKIT_NAMES` in order.
    """
    exp = np.asarray(exp_coeffs, dtype=np.float64).reshape(-1)
    return {name: float(np.clip(combine([exp[i] for i in sources.get(name, ())]), 0.0, 1.0))
            for name in ARKIT_NAMES}


def head_pose(euler_deg: Sequence[float]) -> Dict[str, object]:
    """``{"pitch", "yaw", "roll"}`` in degrees from ``(pitch, yaw, roll)``, with units and convention."""
    pitch, yaw, roll = (float(a) for a in euler_deg)
    return {"pitch": pitch, "yaw": yaw, "roll": roll, "units": "degrees", "convention": POSE_CONVENTION}


def blendshapes_summary(result: FitResult, model: MorphableModel) -> Optional[dict]:
    """The ``blendshapes.json`` content of ``result``, or None when ``model`` has no ARKit mapping."""
    sources = model.arkit_sources()
    if sources is None:
        return None
    if list(result.exp_names) != list(model.exp_names):
        raise ValueError(f"the fit's expression names differ from model {model.name!r}'s")
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "model": result.model_name,
        "blendshapes": arkit_weights(result.exp_coeffs, sources),
        "sources": {name: [model.exp_names[i] for i in idx] for name, idx in sources.items()},
        "split_rule": SPLIT_RULE,
        "head_pose": head_pose(result.euler_deg),
    }


def write_blendshapes_json(path: PathLike, summary: dict) -> Path:
    """Write ``blendshapes.json`` atomically; returns the path."""
    return write_json(path, summary)


def read_blendshapes_json(path: PathLike) -> dict:
    """Read a ``blendshapes.json`` (ValueError naming the file when it is not one)."""
    path = Path(path)
    data = read_json(path, "blendshapes.json")
    if not isinstance(data, dict) or data.get("format") != FORMAT or \
            set(data.get("blendshapes", {})) != set(ARKIT_NAMES):
        raise ValueError(f"{path}: not a prdlfit blendshapes.json with the 52 ARKit names")
    return data
