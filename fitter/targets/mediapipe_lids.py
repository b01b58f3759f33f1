"""Closed eyes in MediaPipe's face mesh: a calibrated map of each eye's lid opening.

MediaPipe's mesh does not close a closed eye. On the 300-W calibration photos, the eyes the
annotators drew closed (their 68 points' lid opening under 0.05 of the eye's width, 16 eyes) read
0.078 in the front end's 68 points and 0.046 on the mesh's own lid contour, while open eyes are
read without bias (0.305 annotated, 0.303 read). A fit follows the lids it is given, so a closed eye
was fitted as a nearly closed one and its blink shared with the squints.

The opening of one eye is measured on the mesh's inner lid contour (the eye polygons of
:mod:`morphable_models.mediapipe_topology`: seven upper points, each paired with the lower point
across from it, and the two corners)::

    o = mean_k |(u_k − l_k) · n| / |c_1 − c_0|,   n ⟂ (c_1 − c_0), |n| = 1

and mapped through a ramp that leaves open eyes alone and takes nearly closed ones to zero::

    g(o) = max(o − s · max(b − o, 0), 0)

Each lid pair (u_k, l_k) is then drawn towards its pivot ``u_k + p (l_k − u_k)`` (p = 0 at the
upper lid; a closed lid line lies nearer the upper lid than the lower) by the factor ``g(o) / o``,
so the 68 points, the mesh term's points and the eye masks, all read from the mesh, close together.
The constants (:data:`CALIBRATED`) are fitted on photos 0-39 of the calibration half by
``scripts/calibrate_lid_opening.py``, which also reports photos 40-74 (BENCHMARKS.md "Session 22").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from morphable_models.mediapipe_topology import LEFT_EYE, RIGHT_EYE


def _lid_pairs(polygon) -> "EyeLids":
    """((upper, lower) pairs, (corner, corner)) of an eye polygon ordered corner, 7 upper points,
    corner, 7 lower points back towards the first corner."""
    upper, lower = polygon[1:8], polygon[15:8:-1]
    return tuple(zip(upper, lower)), (polygon[0], polygon[8])


#: one eye's ((upper lid point, lower lid point), ...) pairs and (corner, corner), point indices
EyeLids = Tuple[Tuple[Tuple[int, int], ...], Tuple[int, int]]

#: eye -> its 7 lid pairs and corners in MediaPipe's mesh
EYE_LIDS: Dict[str, EyeLids] = {
    "right_eye": _lid_pairs(RIGHT_EYE),
    "left_eye": _lid_pairs(LEFT_EYE),
}
#: eye -> its iris points (centre and four rim points; the 478-point mesh's last ten): they lie
#: between the lids and close with them (the 68 points' lids read a little of them)
IRIS: Dict[str, Tuple[int, ...]] = {"right_eye": (468, 469, 470, 471, 472), "left_eye": (473, 474, 475, 476, 477)}


@dataclass(frozen=True)
class LidOpeningMap:
    """``g(o) = max(o − slope · max(below − o, 0), 0)``, the lids drawn towards ``pivot``.

    Attributes:
        below: openings (fraction of the eye's width, on the mesh's lid contour) at or above this
            are left alone.
        slope: how fast an opening under ``below`` shrinks (0 = the identity).
        pivot: where along upper -> lower lid a closing pair meets (0 upper, 1 lower).
    """

    below: float
    slope: float
    pivot: float

    def __post_init__(self) -> None:
        if not (0.0 < self.below < 1.0 and self.slope >= 0.0 and 0.0 <= self.pivot <= 1.0):
            raise ValueError(f"bad lid-opening map {self}: need 0 < below < 1, slope >= 0, 0 <= pivot <= 1")

    def __call__(self, opening: np.ndarray) -> np.ndarray:
        o = np.asarray(opening, dtype=np.float64)
        return np.maximum(o - self.slope * np.maximum(self.below - o, 0.0), 0.0)


#: fitted on the 300-W calibration photos 0-39 (averaged meshes) by ``scripts/calibrate_lid_opening.py``:
#: the least squared error of the 68 points' openings over both eyes (0.00238 -> 0.00161); closed eyes'
#: openings 0.077 -> 0.012 off the annotations' there, 0.045 -> 0.008 on photos 40-74
CALIBRATED = LidOpeningMap(below=0.12, slope=5.0, pivot=0.2)

#: ``TargetConfig.lid_opening`` name -> map (None = MediaPipe's lids as they are)
LID_MAPS: Dict[str, Optional[LidOpeningMap]] = {"calibrated": CALIBRATED, "raw": None}


def lid_opening_map(name: str) -> Optional[LidOpeningMap]:
    """The map called ``name`` in :data:`LID_MAPS` (ValueError naming the choices)."""
    if name not in LID_MAPS:
        raise ValueError(f"unknown lid opening {name!r}; choose from {', '.join(LID_MAPS)}")
    return LID_MAPS[name]


def lid_openings(mesh: np.ndarray, eyes: Mapping[str, EyeLids] = EYE_LIDS) -> np.ndarray:
    """[E] opening of each eye of ``eyes`` (default: the mesh's right and left eye) in points
    [N, >=2] (pixels): the mean distance of its lid pairs across the corner line, over the corner
    distance. ``eyes`` maps a name to ((upper, lower) pairs, (corner, corner)) indices of the points
    (:data:`EYE_LIDS` for MediaPipe's mesh, ``morphable_models.model.EYE_LIDS_68`` for iBUG's 68)."""
    out = []
    for pairs, (c0, c1) in eyes.values():
        axis = mesh[c1, :2] - mesh[c0, :2]
        width = float(np.linalg.norm(axis))
        normal = np.array([-axis[1], axis[0]]) / max(width, 1e-9)
        up, lo = np.array(pairs).T
        out.append(float(np.abs((mesh[up, :2] - mesh[lo, :2]) @ normal).mean()) / max(width, 1e-9))
    return np.array(out)


def close_lids(mesh: np.ndarray, lid_map: Optional[LidOpeningMap]) -> np.ndarray:
    """A copy of ``mesh`` [478, D] (pixels; depth, if D = 3, moves with x and y) whose lids open as
    ``lid_map`` says (None: unchanged copy). An eye's iris points (when the mesh has them) are drawn
    towards the lid line by the same factor, across it only."""
    out = np.array(mesh, dtype=np.float64, copy=True)
    if lid_map is None:
        return out
    for (eye, (pairs, corners)), o in zip(EYE_LIDS.items(), lid_openings(mesh)):
        if o <= 0.0:
            continue
        factor = float(lid_map(o)) / o
        if factor >= 1.0:
            continue
        up, lo = np.array(pairs).T
        pivot = out[up] + lid_map.pivot * (out[lo] - out[up])
        if out.shape[0] > max(IRIS[eye]):
            axis = out[corners[1], :2] - out[corners[0], :2]
            normal = np.array([-axis[1], axis[0]]) / max(float(np.linalg.norm(axis)), 1e-9)
            iris = list(IRIS[eye])
            height = (out[iris, :2] - pivot[:, :2].mean(0)) @ normal  # [5] across the lid line
            out[iris, :2] -= (1.0 - factor) * height[:, None] * normal
        out[up] = pivot + factor * (out[up] - pivot)
        out[lo] = pivot + factor * (out[lo] - pivot)
    return out


__all__ = ["EYE_LIDS", "IRIS", "LidOpeningMap", "CALIBRATED", "LID_MAPS", "lid_opening_map", "lid_openings", "close_lids"]
