"""iBUG-68 landmarks as fixed points on a model's surface (a barycentric landmark embedding).

A model's own ``landmarks68`` are mesh vertices picked by hand. Annotators place the iBUG points
by their own definition (the brow's upper edge, the lid margin, the lip's vermilion border), which
falls between vertices and, for some points, a few millimetres from the picked vertex. A fit that
pulls the picked vertices onto annotated or detected points then bends the face (expression and
identity) to absorb that offset, and reports landmarks with the offset still in them.

An embedding places landmark k at a point of one mesh triangle (f_k, with barycentric weights
w_k, Σ w_k = 1)::

    L_k(id, exp) = Σ_j w_kj · V_{f_kj}(id, exp)

which moves with every coefficient exactly as the surface does. It is realised with the model's
virtual points (see :mod:`morphable_models.model`): :func:`embed_landmarks` appends one virtual
point per embedded landmark and points ``landmarks68[k]`` at it, so every consumer of
``landmarks68`` (the landmark term, contour marching's fixed chin, the rigid start, synthetic
cases, outputs) sees the same definition. Jaw points 0-7 and 9-16 are not embedded: they march
along the face outline (:func:`fitter.losses.landmarks.march_contour_landmarks`).

Tables live in ``morphable_models/data/<model>_landmarks68.json`` and are written by
``scripts/calibrate_landmarks.py`` (fitted on one split of the 300-W training photos).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Optional

import torch
from torch import Tensor

from morphable_models.model import MorphableModel

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class LandmarkEmbedding:
    """K landmarks placed on triangles of a model's mesh.

    Attributes:
        landmarks: [K] int64 iBUG-68 indices (0-based) that the table places.
        triangles: [K, 3] int64 mesh vertex indices of each landmark's triangle.
        weights: [K, 3] float barycentric weights (non-negative, each row sums to 1).
        model: name of the model the vertex indices belong to.
        note: provenance (how and on what the table was fitted).
    """

    landmarks: Tensor
    triangles: Tensor
    weights: Tensor
    model: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        K = self.landmarks.shape[0]
        if self.landmarks.dim() != 1 or self.triangles.shape != (K, 3) or self.weights.shape != (K, 3):
            raise ValueError(f"landmark embedding: landmarks [K], triangles [K, 3], weights [K, 3] expected, got "
                             f"{tuple(self.landmarks.shape)}, {tuple(self.triangles.shape)}, {tuple(self.weights.shape)}")
        if K and (int(self.landmarks.min()) < 0 or int(self.landmarks.max()) > 67):
            raise ValueError("landmark embedding: landmark indices must be in 0..67")
        if K and (bool((self.weights < -1e-6).any()) or bool(((self.weights.sum(1) - 1).abs() > 1e-4).any())):
            raise ValueError("landmark embedding: weights must be non-negative and sum to 1 per landmark")

    def to_json(self) -> Dict[str, object]:
        return {
            "model": self.model,
            "note": self.note,
            "landmarks": {
                str(int(k)): {"triangle": [int(v) for v in t], "weights": [round(float(w), 6) for w in ws]}
                for k, t, ws in zip(self.landmarks, self.triangles, self.weights)
            },
        }

    @classmethod
    def from_json(cls, data: Dict[str, object]) -> "LandmarkEmbedding":
        rows = data["landmarks"]
        keys = sorted(rows, key=int)  # type: ignore[arg-type]
        w = torch.tensor([rows[k]["weights"] for k in keys], dtype=torch.float64)  # type: ignore[index]
        return cls(
            landmarks=torch.tensor([int(k) for k in keys], dtype=torch.long),
            triangles=torch.tensor([rows[k]["triangle"] for k in keys], dtype=torch.long).view(-1, 3),  # type: ignore[index]
            weights=(w / w.sum(1, keepdim=True)).float().view(-1, 3),
            model=str(data.get("model", "")),
            note=str(data.get("note", "")),
        )

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")


def embedding_path(model_name: str) -> Path:
    """Where the packaged table of ``model_name`` lives (it may not exist)."""
    return DATA_DIR / f"{model_name}_landmarks68.json"


def packaged_embedding(model_name: str) -> Optional[LandmarkEmbedding]:
    """The table shipped for ``model_name``, or None when the package has none."""
    path = embedding_path(model_name)
    if not path.is_file():
        return None
    return LandmarkEmbedding.from_json(json.loads(path.read_text("utf-8")))


def embed_landmarks(model: MorphableModel, embedding: LandmarkEmbedding) -> MorphableModel:
    """A copy of ``model`` whose ``landmarks68`` listed in ``embedding`` are new virtual points.

    The K points are appended after the model's existing points (mesh vertices and earlier virtual
    points), in ``mean`` and both bases, as the weighted sums of their triangles' corners; they
    belong to no part; ``landmark_vertices`` keeps the model's own landmark vertices. Other fields
    are shared with ``model``.

    Raises:
        ValueError: when a triangle indexes past the mesh vertices.
    """
    if embedding.landmarks.numel() == 0:
        return model
    tri = embedding.triangles.to(model.device)
    if int(tri.max()) >= model.num_mesh_vertices or int(tri.min()) < 0:
        raise ValueError(f"landmark embedding for {embedding.model or '?'} indexes vertices outside "
                         f"model {model.name}'s {model.num_mesh_vertices} mesh vertices")
    w = embedding.weights.to(device=model.device, dtype=model.mean.dtype)

    def points(table: Tensor) -> Tensor:  # [..., V, 3] -> [..., K, 3]
        return (table[..., tri, :] * w[:, :, None]).sum(-2)

    V = model.num_points
    lm = model.landmarks68.clone()
    lm[embedding.landmarks.to(lm.device)] = torch.arange(V, V + tri.shape[0], device=lm.device)
    return replace(
        model,
        mean=torch.cat([model.mean, points(model.mean)], 0),
        id_basis=torch.cat([model.id_basis, points(model.id_basis)], 1),
        exp_basis=torch.cat([model.exp_basis, points(model.exp_basis)], 1),
        albedo=None if model.albedo is None else torch.cat([model.albedo, points(model.albedo)], 0),
        landmarks68=lm,
        landmark_vertices=model.landmarks68 if model.landmark_vertices is None else model.landmark_vertices,
    )
