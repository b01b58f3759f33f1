"""The model's brows, nose and lips drawn with the front end's own polygons (and its eyes inside its landmarks).

A photo's part targets come from MediaPipe's face mesh: each part is a polygon over mesh points
(:mod:`morphable_models.mediapipe_topology`). The model's parts, as prepared
(:mod:`morphable_models.parts`), follow rules of their own around its landmarks, and the two
disagree where a part has no sharp edge: on ICT the rule-drawn brows sit higher, reach further
towards the nose and cover 20 % more than the front end's, and the nose starts wider at the
bridge. PRDL then pulls the model's brow onto a target that means a different patch of skin, and
pays for it with landmark error.

With a table of MediaPipe's points on the model's surface (:mod:`morphable_models.mesh_landmarks`)
the same polygons can be drawn on the model. On the neutral mean shape, seen from the front::

    part_p = { v in the face region : xy(v) inside polygon_p(xy(M_k) for the table's points M_k) }

for p in :data:`DRAWN_PARTS`, with the brow polygon widened by the front end's
:data:`~morphable_models.mediapipe_topology.BROW_GROW`. The face region is the set of points the
model's own annotation gives any part (so nothing behind the face or under the lids is drawn in).
The eyes keep their own sets here (the filled openings close with the lids; a surface polygon would
not), and claim first; then brows, lips and nose, in that order, as the rules do. Then the eyes are
drawn inside the model's own eye landmarks (:mod:`morphable_models.eye_outline`: virtual points
between the landmarks' arcs, which close with them). A point the rules
gave to a redrawn part and no polygon claims goes to the skin, unless it lies in the mouth opening
between the inner lip contours: there the front end labels no part, and neither does the model.

Everything is computed once at load time from the mean shape (a few milliseconds); the model's
own sets are kept in ``MorphableModel.own_parts`` (:func:`own_parts` puts them back).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, Sequence

import numpy as np
import torch

from morphable_models import mediapipe_topology as T
from morphable_models.eye_outline import outline_eyes
from morphable_models.model import PART_NAMES, MorphableModel
from morphable_models.polygons import points_in_polygon

#: the parts drawn with the front end's polygons, in claiming order (brows, lips, then the nose)
DRAWN_PARTS = ("right_brow", "left_brow", "up_lip", "down_lip", "nose")


def _inside(xy: np.ndarray, idx: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """The indices ``idx`` whose points ``xy[idx]`` lie inside ``polygon`` (bounding box first)."""
    lo, hi = polygon.min(axis=0), polygon.max(axis=0)
    idx = idx[np.all((xy[idx] >= lo) & (xy[idx] <= hi), axis=1)]
    return idx[points_in_polygon(xy[idx], polygon)]


def draw_parts(xy: np.ndarray, own: Dict[str, np.ndarray], polygons: Dict[str, np.ndarray],
               num_mesh_vertices: int, drawn: Sequence[str] = DRAWN_PARTS) -> Dict[str, np.ndarray]:
    """New part sets: ``drawn`` parts from ``polygons``, the others from ``own`` (see module docstring).

    Args:
        xy: [V, 2] frontal positions of the mesh vertices (neutral mean shape).
        own: part name -> int64 point indices (the model's own annotation; may hold virtual points).
        polygons: part name -> [K, 2] polygon in the frame of ``xy`` (``mouth``: the opening).
        num_mesh_vertices: V; indices >= V are virtual points, never drawn in.
        drawn: which parts to redraw.
    Returns:
        part name -> sorted int64 indices, keys in PART_NAMES order, pairwise disjoint.
    """
    V = num_mesh_vertices
    size = 1 + max(int(v.max()) for v in own.values() if len(v))
    region = np.zeros(V, dtype=bool)
    for idx in own.values():
        region[idx[idx < V]] = True
    taken = np.zeros(max(size, V), dtype=bool)
    out: Dict[str, np.ndarray] = {}

    def claim(name: str, idx: np.ndarray) -> None:
        idx = np.unique(idx)
        idx = idx[~taken[idx]]
        taken[idx] = True
        out[name] = idx.astype(np.int64)

    first = [p for p in PART_NAMES if p not in drawn and p != "skin"]  # the eyes
    for name in first:
        claim(name, own[name])
    inside = np.flatnonzero(region)
    for name in drawn:
        own_virtual = own[name][own[name] >= V]
        claim(name, np.concatenate([_inside(xy, inside, polygons[name]), own_virtual]))
    left = np.concatenate([own[p] for p in drawn])
    left = left[(left < V) & ~taken[left]]
    if "mouth" in polygons and ("up_lip" in drawn or "down_lip" in drawn):
        left = np.setdiff1d(left, _inside(xy, left, polygons["mouth"]))
    claim("skin", np.concatenate([own["skin"], left]))
    return {name: np.sort(out[name]) for name in PART_NAMES}


def frontend_parts(model: MorphableModel, drawn: Sequence[str] = DRAWN_PARTS,
                   brow_grow: float = T.BROW_GROW) -> MorphableModel:
    """``model`` with ``drawn`` parts drawn by the front end's polygons through its mesh table.

    Needs ``model.mesh_landmarks`` (:func:`morphable_models.mesh_landmarks.embed_mesh_landmarks`);
    a model without one, or whose table leaves out a corner of a polygon, is returned unchanged.
    """
    if model.mesh_landmarks is None or model.mesh_landmark_ids is None:
        return model
    mean = model.mean.detach().cpu().double().numpy()
    ids = model.mesh_landmark_ids.cpu().numpy()
    mesh = np.full((int(ids.max()) + 1 if ids.size else 0, 2), np.nan)
    mesh[ids] = mean[model.mesh_landmarks.cpu().numpy(), :2]
    try:
        polygons = T.part_polygons(mesh, brow_grow)
    except IndexError:  # a table of a smaller mesh
        return model
    if not all(np.isfinite(polygons[p]).all() for p in list(drawn) + ["mouth"]):
        return model
    base = model.own_parts if model.own_parts is not None else model.parts
    own = {k: v.cpu().numpy() for k, v in base.items()}
    parts = draw_parts(mean[: model.num_mesh_vertices, :2], own, polygons, model.num_mesh_vertices, drawn)
    drawn_model = replace(model, parts={k: torch.as_tensor(v, device=model.device) for k, v in parts.items()},
                          own_parts=dict(base))
    return outline_eyes(drawn_model)


def own_parts(model: MorphableModel) -> MorphableModel:
    """``model`` with its own part annotation (what :func:`frontend_parts` replaced)."""
    if model.own_parts is None:
        return model
    own = replace(model, parts=dict(model.own_parts), own_parts=None)
    # the outlined eyes' grids (:mod:`morphable_models.eye_outline`) join points no own part holds
    labelled = (own.part_labels()[own.hole_triangles.to(own.device)] > 0).all(dim=1)
    return replace(own, hole_triangles=own.hole_triangles[labelled.to(own.hole_triangles.device)])
