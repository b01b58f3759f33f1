"""Bring a model's axes to the project conventions (+Y up, +Z to the viewer, +X the person's left).

Decided from the 68 landmarks of the mean shape, so it works for any model with iBUG landmarks.
Mirroring one axis reverses triangle winding, which is corrected so normals stay outward.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AxisFlips:
    """Which axes to negate to reach the project conventions."""

    x: bool = False
    y: bool = False
    z: bool = False

    @property
    def sign(self) -> np.ndarray:
        """[3] +1/-1 per axis."""
        return np.array([-1.0 if f else 1.0 for f in (self.x, self.y, self.z)])

    @property
    def mirrors(self) -> bool:
        """True when an odd number of axes flip (handedness changes, winding must reverse)."""
        return (self.x + self.y + self.z) % 2 == 1


def axis_flips_from_landmarks(landmarks: np.ndarray) -> AxisFlips:
    """Flips that give: right eye outer corner (36) at smaller x than the left one (45); nose
    bridge (27) above the chin (8); nose tip (30) in front of the jaw ends (0, 16).

    Args:
        landmarks: [68, 3] landmark positions on the mean shape.
    """
    return AxisFlips(
        x=bool(landmarks[36, 0] > landmarks[45, 0]),
        y=bool(landmarks[27, 1] < landmarks[8, 1]),
        z=bool(landmarks[30, 2] < landmarks[[0, 16], 2].mean()),
    )


def apply_flips(points: np.ndarray, flips: AxisFlips) -> np.ndarray:
    """[..., 3] points (or basis vectors) with the flipped axes negated."""
    return points * flips.sign.astype(points.dtype)


def fix_winding(triangles: np.ndarray, flips: AxisFlips) -> np.ndarray:
    """[F, 3] triangles with reversed winding when the flips mirror the mesh."""
    return triangles[:, [0, 2, 1]].copy() if flips.mirrors else triangles
