"""Named regions of MediaPipe's face mesh: which of its 478 points outline the eyes, brows, lips, nose.

The sets are MediaPipe's own (``mediapipe.python.solutions.face_mesh_connections.FACEMESH_<NAME>``,
the points of each region's outline edges), read from the installed package on first use through
:func:`fitter.targets.mediapipe_import.face_solutions` (no import of the rest of mediapipe). The fit
uses them to weight the ``mesh_lmk`` term per region (``FitConfig.mesh_region_weights``).
"""
from __future__ import annotations

import functools
from typing import Mapping, Set, Tuple

import numpy as np

from morphable_models.mesh_landmarks import MEDIAPIPE_MESH_POINTS as MESH_POINTS

#: region name -> the FACEMESH_* connection sets it unites
_SOURCES = {
    "eyes": ("FACEMESH_LEFT_EYE", "FACEMESH_RIGHT_EYE"),
    "brows": ("FACEMESH_LEFT_EYEBROW", "FACEMESH_RIGHT_EYEBROW"),
    "lips": ("FACEMESH_LIPS",),
    "nose": ("FACEMESH_NOSE",),
}

#: the region names :func:`mesh_point_weights` takes; ``rest`` is every point in none of the others
MESH_REGIONS: Tuple[str, ...] = tuple(_SOURCES) + ("rest",)


def connection_points(*names: str) -> Set[int]:
    """The mesh points of MediaPipe's connection sets ``names`` (``"FACEMESH_LIPS"``, ...), united;
    read through the light import (:func:`fitter.targets.mediapipe_import.face_solutions`)."""
    import importlib

    from fitter.targets.mediapipe_import import face_solutions

    face_solutions()  # the connections module without the rest of mediapipe
    conns = importlib.import_module("mediapipe.python.solutions.face_mesh_connections")
    return {int(i) for name in names for edge in getattr(conns, name) for i in edge}


@functools.lru_cache(maxsize=None)
def region_ids(name: str) -> Tuple[int, ...]:
    """Sorted mesh point indices of region ``name`` (one of :data:`MESH_REGIONS`)."""
    if name not in MESH_REGIONS:
        raise ValueError(f"unknown mesh region {name!r}; regions: {', '.join(MESH_REGIONS)}")
    if name == "rest":
        named = set().union(*(region_ids(r) for r in _SOURCES))
        return tuple(i for i in range(MESH_POINTS) if i not in named)
    return tuple(sorted(connection_points(*_SOURCES[name])))


def mesh_point_weights(weights: Mapping[str, float]) -> np.ndarray:
    """[478] float32 weight of each mesh point: ``weights[region]`` for the points of each named
    region (a point in two regions takes the later one's, in :data:`MESH_REGIONS` order), 1 elsewhere."""
    out = np.ones(MESH_POINTS, np.float32)
    for name in MESH_REGIONS:
        if name in weights:
            out[list(region_ids(name))] = float(weights[name])
    return out
