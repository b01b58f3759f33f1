"""A front end's dense face mesh (MediaPipe's 478 points) as fixed points on a model's surface.

MediaPipe's face mesh regresses 478 points of its own canonical face for every photo: the 68
landmarks the front end hands over (:mod:`fitter.targets.mediapipe_68`) are a linear read-out of
them, so the mesh holds every 2D fact the 68 hold and several hundred more (each lid and lip
contour with 16-20 points, the nose's wings, the cheeks). The ``mesh_lmk`` term pulls the model's
counterparts of those points onto them; this module is where the counterparts are defined.

A table places mesh point m_k at a point of one model triangle (f_k, barycentric weights w_k,
Σ w_k = 1)::

    M_k(id, exp) = Σ_j w_kj · V_{f_kj}(id, exp)

like the iBUG-68 embedding (:mod:`morphable_models.landmark_embedding`), and
:func:`embed_mesh_landmarks` appends them as the model's virtual points: ``model.mesh_landmarks``
[K] are their point indices and ``model.mesh_landmark_ids`` [K] the mesh indices they stand for.
MediaPipe's points are the projections of its 3D mesh, occluded or not, so the counterparts are
projected the same way (no visibility test, no contour marching); a table leaves out the face
oval, where MediaPipe's outline is a silhouette of its own face, not a fixed surface point.

Tables live in ``morphable_models/data/<model>_mediapipe478.json`` and are written by
``scripts/calibrate_mesh_landmarks.py`` (fitted on one split of the 300-W training photos).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Optional

import torch
from torch import Tensor

from morphable_models.landmark_embedding import DATA_DIR, append_surface_points
from morphable_models.model import MorphableModel

#: the dense mesh the packaged tables are made for: MediaPipe's face mesh with irises
MEDIAPIPE_MESH = "mediapipe478"
MEDIAPIPE_MESH_POINTS = 478


@dataclass(frozen=True)
class MeshLandmarkEmbedding:
    """K points of a front end's mesh placed on triangles of a model's mesh.

    Attributes:
        ids: [K] int64 indices in the front end's mesh (0 .. ``mesh_points`` - 1), distinct.
        triangles: [K, 3] int64 model mesh vertex indices of each point's triangle.
        weights: [K, 3] float barycentric weights (non-negative, each row sums to 1).
        mesh: name of the front end's mesh (:data:`MEDIAPIPE_MESH`).
        mesh_points: number of points of that mesh.
        model: name of the model the vertex indices belong to.
        note: provenance (how and on what the table was fitted).
    """

    ids: Tensor
    triangles: Tensor
    weights: Tensor
    mesh: str = MEDIAPIPE_MESH
    mesh_points: int = MEDIAPIPE_MESH_POINTS
    model: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        K = self.ids.shape[0]
        if self.ids.dim() != 1 or self.triangles.shape != (K, 3) or self.weights.shape != (K, 3):
            raise ValueError(f"mesh landmarks: ids [K], triangles [K, 3], weights [K, 3] expected, got "
                             f"{tuple(self.ids.shape)}, {tuple(self.triangles.shape)}, {tuple(self.weights.shape)}")
        if K and (int(self.ids.min()) < 0 or int(self.ids.max()) >= self.mesh_points):
            raise ValueError(f"mesh landmarks: ids must be in 0..{self.mesh_points - 1}")
        if int(torch.unique(self.ids).numel()) != K:
            raise ValueError("mesh landmarks: ids must be distinct")
        if K and (bool((self.weights < -1e-6).any()) or bool(((self.weights.sum(1) - 1).abs() > 1e-4).any())):
            raise ValueError("mesh landmarks: weights must be non-negative and sum to 1 per point")

    def to_json(self) -> Dict[str, object]:
        return {
            "model": self.model, "mesh": self.mesh, "mesh_points": int(self.mesh_points), "note": self.note,
            "points": {str(int(k)): {"triangle": [int(v) for v in t], "weights": [round(float(w), 6) for w in ws]}
                       for k, t, ws in zip(self.ids, self.triangles, self.weights)},
        }

    @classmethod
    def from_json(cls, data: Dict[str, object]) -> "MeshLandmarkEmbedding":
        rows = data["points"]
        keys = list(rows)  # type: ignore[arg-type]  (the file's order)
        w = torch.tensor([rows[k]["weights"] for k in keys], dtype=torch.float64).view(-1, 3)  # type: ignore[index]
        return cls(
            ids=torch.tensor([int(k) for k in keys], dtype=torch.long),
            triangles=torch.tensor([rows[k]["triangle"] for k in keys], dtype=torch.long).view(-1, 3),  # type: ignore[index]
            weights=(w / w.sum(1, keepdim=True)).float(),
            mesh=str(data.get("mesh", MEDIAPIPE_MESH)),
            mesh_points=int(data.get("mesh_points", MEDIAPIPE_MESH_POINTS)),  # type: ignore[arg-type]
            model=str(data.get("model", "")),
            note=str(data.get("note", "")),
        )

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")


def mesh_landmarks_path(model_name: str, mesh: str = MEDIAPIPE_MESH) -> Path:
    """Where the packaged table of ``model_name`` for ``mesh`` lives (it may not exist)."""
    return DATA_DIR / f"{model_name}_{mesh}.json"


def packaged_mesh_landmarks(model_name: str, mesh: str = MEDIAPIPE_MESH) -> Optional[MeshLandmarkEmbedding]:
    """The table shipped for ``model_name``, or None when the package has none."""
    path = mesh_landmarks_path(model_name, mesh)
    if not path.is_file():
        return None
    return MeshLandmarkEmbedding.from_json(json.loads(path.read_text("utf-8")))


def embed_mesh_landmarks(model: MorphableModel, table: MeshLandmarkEmbedding) -> MorphableModel:
    """A copy of ``model`` with the table's points appended as virtual points and named in
    ``mesh_landmarks`` / ``mesh_landmark_ids`` (replacing an earlier table's names; its points stay).

    Raises:
        ValueError: when a triangle indexes past the mesh vertices.
    """
    out, first = append_surface_points(model, table.triangles, table.weights,
                                       what=f"mesh landmarks for {table.model or '?'}")
    K = table.ids.shape[0]
    return replace(out, mesh_landmarks=torch.arange(first, first + K, device=model.device),
                   mesh_landmark_ids=table.ids.to(model.device))
