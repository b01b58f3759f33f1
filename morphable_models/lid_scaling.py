"""Blinks that close each identity's own eye: the blink shapes scaled by the identity's lid gap.

A linear model's expression shapes are the same for every identity: ICT-FaceKit's eyeBlink_L = 1
moves the left upper lid down by the distance that closes the *mean* face's eye. On an identity whose
lids lie closer (narrower eyes) the same shape carries the upper lid past the lower one, and a fit of
a closed eye stops where the lids meet, at eyeBlink ≈ 0.8 (BENCHMARKS.md, "Session 22"); on wider
eyes it leaves a slit. ARKit, whose names ICT uses, means by 1 a closed eye. Scaling each blink by the
identity's own lid gap over the mean face's makes it mean that for every face::

    exp'_b = exp_b · s_b(id),   s_b(id) = g_b(id) / g_b(0) = 1 + id · d_b,   clamped to [EXP_SCALE_MIN, EXP_SCALE_MAX] of model.py
    V(id, exp) = mean + id · id_basis + exp' · exp_basis

with g_b the eye's lid gap (the mean over its two iBUG lid pairs, upper minus lower landmark height,
+Y up) at zero expression, linear in the identity coefficients: d_b [K_id] = the identity basis's
change of the gap over g_b(0). Only the blinks are scaled; everything else stays linear.

The model carries the table as two tensors (:attr:`MorphableModel.exp_scale_index`,
:attr:`MorphableModel.exp_scale_gain`), applied by :func:`morphable_models.model.scale_expressions`
inside :func:`morphable_models.model.blend_shape`;
:func:`with_lid_scaled_blinks` attaches it (``FitConfig.blink_scale = "identity"``, the default since
session 22), :func:`without_exp_scale` takes it off (the paper's linear model).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Tuple

import torch
from torch import Tensor

from morphable_models.model import EYE_LIDS_68, MorphableModel

#: blink expression name -> its eye's iBUG-68 (upper, lower) lid pairs (the person's own side)
BLINK_LIDS = {"eyeBlink_R": EYE_LIDS_68["right_eye"][0], "eyeBlink_L": EYE_LIDS_68["left_eye"][0]}


def lid_gap_gains(model: MorphableModel) -> Optional[Tuple[Tensor, Tensor]]:
    """([E] long expression indices, [E, K_id] gains d_b) of the model's blinks, or None when it has
    no blink shapes. Lids are read at the model's own landmark vertices (``landmark_vertices`` when
    the 68 points were re-pointed, else ``landmarks68``)."""
    lids = model.landmark_vertices if model.landmark_vertices is not None else model.landmarks68
    index, gains = [], []
    for name, pairs in BLINK_LIDS.items():
        if name not in model.exp_names:
            continue
        up = lids[[u for u, _ in pairs]]
        lo = lids[[lw for _, lw in pairs]]
        gap0 = (model.mean[up, 1] - model.mean[lo, 1]).mean()
        if not float(gap0) > 0:
            raise ValueError(f"{model.name}: the mean face's {name} lids are not open ({float(gap0):.3g})")
        d = (model.id_basis[:, up, 1] - model.id_basis[:, lo, 1]).mean(1) / gap0  # [K_id]
        index.append(model.exp_names.index(name))
        gains.append(d)
    if not index:
        return None
    return torch.tensor(index, dtype=torch.long, device=model.device), torch.stack(gains).to(model.mean.dtype)


def with_lid_scaled_blinks(model: MorphableModel) -> MorphableModel:
    """``model`` whose blinks close each identity's own eye (see the module docstring); unchanged
    when it has no blink shapes."""
    table = lid_gap_gains(model)
    if table is None:
        return model
    return replace(model, exp_scale_index=table[0], exp_scale_gain=table[1])


def without_exp_scale(model: MorphableModel) -> MorphableModel:
    """``model`` as a plain linear model (no identity-scaled expressions)."""
    return replace(model, exp_scale_index=None, exp_scale_gain=None)


__all__ = ["BLINK_LIDS", "lid_gap_gains", "with_lid_scaled_blinks", "without_exp_scale"]
