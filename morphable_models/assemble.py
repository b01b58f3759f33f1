"""Bare mesh-model arrays -> annotated :class:`MorphableModel` (shared by the ICT and SFM converters).

Steps: bring the axes to the project conventions, annotate the neutral mean
(:func:`morphable_models.annotate.annotate_mesh`), materialize the virtual points as extra rows of
the mean and of every basis vector, and cast to float32 / int64 tensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch

from morphable_models.annotate import MeshAnnotation, annotate_mesh
from morphable_models.eye_fill import apply_weights
from morphable_models.model import MorphableModel
from morphable_models.orientation import apply_flips, axis_flips_from_landmarks, fix_winding


@dataclass
class MeshModelArrays:
    """A linear face model as read from its files, before annotation.

    Attributes:
        mean: [V, 3]; id_basis: [K_id, V, 3]; exp_basis: [K_exp, V, 3] (float64 or float32).
        triangles: [F, 3] int; landmarks68: [68] int vertex indices.
        region: [V] bool, vertices that may be labelled as face parts (None = all).
        id_std / exp_std / exp_lower / exp_upper: per-coefficient prior and bounds.
    """

    name: str
    mean: np.ndarray
    id_basis: np.ndarray
    exp_basis: np.ndarray
    exp_names: List[str]
    triangles: np.ndarray
    landmarks68: np.ndarray
    id_std: np.ndarray
    exp_std: np.ndarray
    exp_lower: np.ndarray
    exp_upper: np.ndarray
    units: str
    mm_per_unit: float
    license: str
    source: str
    region: Optional[np.ndarray] = None
    #: names of the expressions that close the (right, left) eye, used to find eyelid margins
    eye_closing: Optional[Tuple[str, str]] = None


def assemble_model(a: MeshModelArrays) -> Tuple[MorphableModel, MeshAnnotation]:
    """Annotate and package a bare mesh model (deterministic).

    Returns:
        (model on CPU, the annotation with the virtual-point weights).
    """
    lm = np.asarray(a.landmarks68, dtype=np.int64)
    flips = axis_flips_from_landmarks(np.asarray(a.mean)[lm])
    # everything is rounded to float32 first, so the annotation is a pure function of the stored
    # arrays (re-annotating a cached model reproduces it exactly)
    mean = apply_flips(np.asarray(a.mean, dtype=np.float32), flips).astype(np.float64)
    id_basis = apply_flips(np.asarray(a.id_basis, dtype=np.float32), flips)
    exp_basis = apply_flips(np.asarray(a.exp_basis, dtype=np.float32), flips)
    tri = fix_winding(np.asarray(a.triangles, dtype=np.int64), flips)
    closing = None
    if a.eye_closing is not None:
        closing = tuple(exp_basis[list(a.exp_names).index(n)].astype(np.float64) for n in a.eye_closing)
    ann = annotate_mesh(mean, tri, lm, a.region, eye_closing=closing)

    def extend(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x, apply_weights(x, ann.weight_index, ann.weight)], axis=-2).astype(np.float32)

    f32 = lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # noqa: E731
    i64 = lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.int64))  # noqa: E731
    model = MorphableModel(
        name=a.name,
        mean=f32(extend(mean)),
        id_basis=f32(extend(id_basis)),
        exp_basis=f32(extend(exp_basis)),
        exp_names=list(a.exp_names),
        triangles=i64(tri),
        landmarks68=i64(lm),
        parts={k: i64(v) for k, v in ann.parts.items()},
        num_mesh_vertices=int(mean.shape[0]),
        contour_candidates=i64(ann.contour_candidates),
        id_std=f32(a.id_std),
        exp_std=f32(a.exp_std),
        exp_lower=f32(a.exp_lower),
        exp_upper=f32(a.exp_upper),
        hole_triangles=i64(ann.hole_triangles.reshape(-1, 3)),
        units=a.units,
        mm_per_unit=float(a.mm_per_unit),
        license=a.license,
        source=a.source,
    )
    model.validate()
    return model, ann
