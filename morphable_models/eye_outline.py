"""The model's eyes drawn inside its own six eye landmarks, as annotators outline an eye.

ICT-FaceKit's own eye part is its filled lid opening (:mod:`morphable_models.eye_fill`), bounded by
the mesh's lid margin: on the neutral face it stops 6 % of the eye's width short of each corner and
below the upper lid's landmarks, covering 0.86 of the region the landmarks outline. Annotators (and
the front end's eye polygon) outline an eye by its corners and two points on each lid, iBUG 36-41 and
42-47, and the model's calibrated landmarks (:mod:`morphable_models.landmark_embedding`) are those
points on its surface. Here each eye becomes the region between two arcs through them, upper
``36-37-38-39`` and lower ``36-41-40-39`` (the left eye likewise): on each arc the cubic through its
four points P_0..P_3 at their chord-length parameters u_j on the neutral face, sampled at t::

    C(t) = Σ_j L_j(t) P_j,   L_j(t) = Π_{m≠j} (t − u_m) / (u_j − u_m)

(the same curve :func:`fitter.geometry.curves.open_curve` draws through the annotated points, its
parameters fixed so that it is linear in the points). Between the arcs, rows of points
``(1 − s) C_up(t) + s C_low(t)`` make a grid, triangulated: every grid point is a fixed affine
combination of eight landmark points, which are fixed combinations of mesh vertices, so it is a
virtual point that moves linearly with every coefficient, and when a blink lays each upper landmark
onto its lower partner the whole grid closes onto the lid line. The grid sits :data:`EYE_LIFT` in
front of the surface (the mean shape's z; it turns with the head), so that the lid margin and the
opening's fill do not hide it; the fill and its rim stay in the model as skin, under the drawn eye.

Applied at load time with the drawn parts (:func:`morphable_models.frontend_parts.frontend_parts`,
undone by its ``own_parts``), when the model's eye landmarks are virtual points outside every part
(a calibrated embedding; with its own landmark vertices a model keeps its filled openings).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Tuple

import numpy as np
import torch

from morphable_models.annotate import orient_towards_viewer
from morphable_models.model import OUTLINE_ARCS_68, PART_NAMES, MorphableModel, append_points

#: (part, iBUG-68 indices of its upper arc corner to corner, of its lower arc in the same direction):
#: the annotated outline's arcs (:data:`morphable_models.model.OUTLINE_ARCS_68`), the lower one reversed
EYE_ARCS_68: Tuple[Tuple[str, Tuple[int, ...], Tuple[int, ...]], ...] = tuple(
    (name, OUTLINE_ARCS_68[name][0], tuple(reversed(OUTLINE_ARCS_68[name][1]))) for name in ("right_eye", "left_eye"))
#: samples per arc segment (an arc of 3 segments has 3 · 4 + 1 points, the corners included)
EYE_ARC_SAMPLES = 4
#: the eye grid sits this far in front of the surface (model units, +z: ICT cm), so that the lid
#: margin and the old fill behind them do not hide the eye the landmarks outline
EYE_LIFT = 0.05
#: bands of points between the upper and the lower arc (as the old fill's rows)
EYE_ROWS = 4


def lagrange_weights(params: np.ndarray, t: np.ndarray) -> np.ndarray:
    """[T, n] weights of the polynomial through n points at parameters ``params`` [n], sampled at
    ``t`` [T]: row k times the points [n, D] is the curve at t[k] (each row sums to 1)."""
    u = np.asarray(params, np.float64)
    out = np.ones((len(t), len(u)))
    for j in range(len(u)):
        for m in range(len(u)):
            if m != j:
                out[:, j] *= (t - u[m]) / (u[j] - u[m])
    return out


def outline_eyes(model: MorphableModel, samples: int = EYE_ARC_SAMPLES, rows: int = EYE_ROWS,
                 lift: float = EYE_LIFT) -> MorphableModel:
    """``model`` whose eye parts are the regions inside its eye landmarks' arcs (module docstring);
    unchanged when an eye landmark is a mesh vertex or already in a part.

    Args:
        samples: points per arc segment (3 segments per arc).
        rows: bands between the upper and the lower arc (``rows - 1`` inner rows of points).
        lift: see :data:`EYE_LIFT`.
    """
    lm = model.landmarks68.cpu().numpy()
    labels = model.part_labels().cpu().numpy()
    used = sorted({i for _, up, lo in EYE_ARCS_68 for i in up + lo})
    if any(lm[i] < model.num_mesh_vertices or labels[lm[i]] != 0 for i in used):
        return model
    S = 3 * samples + 1
    t = np.linspace(0.0, 1.0, S)
    mean = model.mean.detach().cpu().double().numpy()
    rows_i, rows_w, grids = [], [], []
    NEW = 1 << 40  # grid entries >= NEW are new points (NEW + their row), placed once all are known
    for name, up, lo in EYE_ARCS_68:
        ctrl = np.asarray([lm[i] for i in up + lo], dtype=np.int64)  # 8 control points
        arc_w = []
        for arc in (up, lo):
            seg = np.linalg.norm(np.diff(mean[lm[list(arc)], :2], axis=0), axis=1)
            arc_w.append(lagrange_weights(np.concatenate([[0.0], np.cumsum(seg)]) / seg.sum(), t))  # [S, 4]
        grid = np.zeros((S, rows + 1), dtype=np.int64)
        for k in range(S):
            for r in range(rows + 1):
                if k in (0, S - 1):  # the corners: every row meets there
                    grid[k, r] = lm[up[0] if k == 0 else up[-1]]
                    continue
                s_ = r / rows
                rows_i.append(ctrl)
                rows_w.append(np.concatenate([(1 - s_) * arc_w[0][k], s_ * arc_w[1][k]]))
                grid[k, r] = NEW + len(rows_w) - 1
        grids.append((name, grid))
    index, weight, shift = np.asarray(rows_i), np.asarray(rows_w), np.array([0.0, 0.0, lift])
    K, N = len(weight), model.num_points
    tail = mean[N - K:] if N - K >= model.num_mesh_vertices else None
    wanted = np.einsum("kj,kjc->kc", weight, mean[index]) + shift
    if tail is not None and np.allclose(tail, wanted, atol=1e-6):
        out, first = model, N - K  # drawn before (own_parts keeps the points): reuse them
    else:
        out, first = append_points(model, torch.as_tensor(index), torch.as_tensor(weight), torch.as_tensor(shift))
    grids = [(name, np.where(grid >= NEW, grid - NEW + first, grid)) for name, grid in grids]
    parts = {k: v.cpu().numpy() for k, v in model.parts.items()}
    tris = []
    for name, grid in grids:
        for k in range(S - 1):
            for r in range(rows):
                p, q = grid[k], grid[k + 1]
                tris += [(p[r], q[r], q[r + 1]), (p[r], q[r + 1], p[r + 1])]
        parts["skin"] = np.union1d(parts["skin"], parts[name])  # the old fill stays, as skin, behind
        parts[name] = np.unique(grid)
    tri = np.asarray([t_ for t_ in tris if len(set(t_)) == 3], dtype=np.int64)
    tri = orient_towards_viewer(out.mean.detach().cpu().double().numpy(), tri)
    hole = torch.cat([model.hole_triangles,
                      torch.as_tensor(tri, dtype=model.hole_triangles.dtype, device=model.hole_triangles.device)])
    return replace(out, hole_triangles=hole,
                   parts={k: torch.as_tensor(np.sort(parts[k]), device=model.device) for k in PART_NAMES})
