"""The posed mesh of a fit: mesh vertices in camera space, triangles and part labels.

Camera space is the fitting camera's (OpenCV axes: x right, y down, z forward into the scene),
in model units; see :mod:`fitter.geometry.camera`. Virtual points of the model (indices at or
past ``num_mesh_vertices``) are not part of the mesh and are dropped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fitter.palette import label_colors
from fitter.result import FitResult
from morphable_models.model import MorphableModel


@dataclass
class FittedMesh:
    """A posed, part-labelled triangle mesh.

    Attributes:
        vertices: [N, 3] float32 camera space, model units (N = model.num_mesh_vertices).
        triangles: [F, 3] int64 indices into ``vertices``.
        labels: [N] int64 part label per vertex (0 none, i + 1 = PART_NAMES[i]).
        units: length unit of ``vertices`` (the model's).
    """

    vertices: np.ndarray
    triangles: np.ndarray
    labels: np.ndarray
    units: str

    @property
    def colors(self) -> np.ndarray:
        """[N, 3] uint8 RGB part colour per vertex (see :mod:`fitter.outputs.palette`)."""
        return label_colors(self.labels)


def check_result_matches_model(result: FitResult, model: MorphableModel) -> None:
    """Raise ValueError when ``result`` was not fitted with ``model`` (name or point count differ)."""
    V = np.asarray(result.vertices_camera).shape[0]
    if V != model.num_points:
        raise ValueError(f"the fit has {V} points but model {model.name!r} has {model.num_points}; "
                         f"pass the model that was fitted ({result.model_name!r})")


def fitted_mesh(result: FitResult, model: MorphableModel) -> FittedMesh:
    """The fitted mesh of ``result`` (posed, camera space) with ``model``'s triangles and parts."""
    check_result_matches_model(result, model)
    n = model.num_mesh_vertices
    labels = model.part_labels().cpu().numpy()[:n]
    return FittedMesh(
        vertices=np.asarray(result.vertices_camera, dtype=np.float32)[:n],
        triangles=model.triangles.cpu().numpy().astype(np.int64),
        labels=labels.astype(np.int64),
        units=model.units,
    )
