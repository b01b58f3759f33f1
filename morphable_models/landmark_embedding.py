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
cases, outputs) sees the same definition.

Jaw points 0-7 and 9-16 march along the face outline
(:func:`fitter.losses.landmarks.march_contour_landmarks`): each is the outermost vertex of its
contour line, a slab of the surface at one height. Where along the jaw an annotator puts point j
is a convention too, so a table may also carry **jaw lines**: for each of those points an anchor
vertex (the point on the neutral face, which sets the line's height) and its line
(:func:`morphable_models.contours.contour_line`); :func:`embed_landmarks` puts them in
``landmarks68[j]`` and ``contour_candidates[j]``.

Tables live in ``morphable_models/data/<model>_landmarks68.json`` and are written by
``scripts/calibrate_landmarks.py`` (fitted on one split of the 300-W training photos).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Optional

import torch
from torch import Tensor

from morphable_models.model import MorphableModel, append_points

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
        jaw_landmarks: [J] int64 jaw points (0-7, 9-16) whose line the table sets (may be empty).
        jaw_anchors: [J] int64 their anchor vertices.
        jaw_lines: [J, L] int64 their contour lines, inner to outer, padded with -1.
    """

    landmarks: Tensor
    triangles: Tensor
    weights: Tensor
    model: str = ""
    note: str = ""
    jaw_landmarks: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    jaw_anchors: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    jaw_lines: Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.long))

    def __post_init__(self) -> None:
        K = self.landmarks.shape[0]
        if self.landmarks.dim() != 1 or self.triangles.shape != (K, 3) or self.weights.shape != (K, 3):
            raise ValueError(f"landmark embedding: landmarks [K], triangles [K, 3], weights [K, 3] expected, got "
                             f"{tuple(self.landmarks.shape)}, {tuple(self.triangles.shape)}, {tuple(self.weights.shape)}")
        if K and (int(self.landmarks.min()) < 0 or int(self.landmarks.max()) > 67):
            raise ValueError("landmark embedding: landmark indices must be in 0..67")
        if K and (bool((self.weights < -1e-6).any()) or bool(((self.weights.sum(1) - 1).abs() > 1e-4).any())):
            raise ValueError("landmark embedding: weights must be non-negative and sum to 1 per landmark")
        J = self.jaw_landmarks.shape[0]
        if self.jaw_anchors.shape != (J,) or self.jaw_lines.dim() != 2 or self.jaw_lines.shape[0] != J:
            raise ValueError(f"landmark embedding: jaw_landmarks [J], jaw_anchors [J], jaw_lines [J, L] expected, got "
                             f"{tuple(self.jaw_landmarks.shape)}, {tuple(self.jaw_anchors.shape)}, "
                             f"{tuple(self.jaw_lines.shape)}")
        if J and not all(0 <= int(j) <= 16 and int(j) != 8 for j in self.jaw_landmarks):
            raise ValueError("landmark embedding: jaw lines are for landmarks 0-7 and 9-16")
        if J and not all(int(a) in set(r[r >= 0].tolist()) for a, r in zip(self.jaw_anchors, self.jaw_lines)):
            raise ValueError("landmark embedding: each jaw line must contain its anchor")

    def to_json(self) -> Dict[str, object]:
        out: Dict[str, object] = {
            "model": self.model,
            "note": self.note,
            "landmarks": {
                str(int(k)): {"triangle": [int(v) for v in t], "weights": [round(float(w), 6) for w in ws]}
                for k, t, ws in zip(self.landmarks, self.triangles, self.weights)
            },
        }
        if self.jaw_landmarks.numel():
            out["jaw"] = {str(int(j)): {"anchor": int(a), "line": [int(v) for v in r if v >= 0]}
                          for j, a, r in zip(self.jaw_landmarks, self.jaw_anchors, self.jaw_lines)}
        return out

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
            **jaw_from_json(data.get("jaw", {})),  # type: ignore[arg-type]
        )

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")


def jaw_from_json(rows: Dict[str, Dict[str, object]]) -> Dict[str, Tensor]:
    """The ``jaw_*`` fields of :class:`LandmarkEmbedding` from a table's ``"jaw"`` entry."""
    keys = sorted(rows, key=int)
    lines = [list(rows[k]["line"]) for k in keys]  # type: ignore[call-overload]
    L = max((len(r) for r in lines), default=0)
    return {
        "jaw_landmarks": torch.tensor([int(k) for k in keys], dtype=torch.long),
        "jaw_anchors": torch.tensor([int(rows[k]["anchor"]) for k in keys], dtype=torch.long),  # type: ignore[call-overload]
        "jaw_lines": torch.tensor([r + [-1] * (L - len(r)) for r in lines], dtype=torch.long).view(len(keys), L),
    }


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
    belong to no part; ``landmark_vertices`` keeps the model's own landmark vertices. The table's
    jaw lines replace those rows of ``contour_candidates`` (``own_contour_candidates`` keeps the
    model's) and their anchors those jaw entries of ``landmarks68``. Other fields are shared with
    ``model``; :func:`own_landmarks` undoes it.

    Raises:
        ValueError: when a triangle or a jaw line indexes past the mesh vertices.
    """
    model = _with_jaw_lines(model, embedding)
    if embedding.landmarks.numel() == 0:
        return model
    model, first = append_surface_points(model, embedding.triangles, embedding.weights,
                                         what=f"landmark embedding for {embedding.model or '?'}")
    lm = model.landmarks68.clone()
    K = embedding.triangles.shape[0]
    lm[embedding.landmarks.to(lm.device)] = torch.arange(first, first + K, device=lm.device)
    return replace(model, landmarks68=lm, landmark_vertices=model.landmarks68 if model.landmark_vertices is None
                   else model.landmark_vertices)


def append_surface_points(model: MorphableModel, triangles: Tensor, weights: Tensor, what: str = "surface points"):
    """``(model with K virtual points appended, index of the first)``: point k is
    ``Σ_j weights[k, j] · V_{triangles[k, j]}`` in ``mean``, both bases and ``albedo``, so it moves
    with every coefficient as the surface does; it belongs to no part.

    Args:
        triangles: [K, 3] int64 mesh vertex indices. weights: [K, 3] barycentric weights.
    Raises:
        ValueError: (starting with ``what``) when a triangle indexes past the mesh vertices.
    """
    tri = triangles.to(model.device)
    if tri.numel() and (int(tri.max()) >= model.num_mesh_vertices or int(tri.min()) < 0):
        raise ValueError(f"{what} indexes vertices outside model {model.name}'s {model.num_mesh_vertices} mesh vertices")
    return append_points(model, tri, weights)


def _with_jaw_lines(model: MorphableModel, embedding: LandmarkEmbedding) -> MorphableModel:
    """``model`` with the table's jaw lines and anchors in place (unchanged when it has none)."""
    J = embedding.jaw_landmarks.numel()
    if J == 0:
        return model
    used = embedding.jaw_lines[embedding.jaw_lines >= 0]
    if int(used.max()) >= model.num_mesh_vertices:
        raise ValueError(f"landmark embedding for {embedding.model or '?'}: a jaw line indexes vertices outside "
                         f"model {model.name}'s {model.num_mesh_vertices} mesh vertices")
    old = model.contour_candidates
    rows = {int(j): r[r >= 0] for j, r in zip(embedding.jaw_landmarks, embedding.jaw_lines)}
    L = max([int((old[j] >= 0).sum()) for j in range(17) if j not in rows] + [len(r) for r in rows.values()])
    cand = torch.full((17, L), -1, dtype=old.dtype, device=old.device)
    for j in range(17):
        r = rows[j].to(old) if j in rows else old[j][old[j] >= 0]
        cand[j, :len(r)] = r
    lm = model.landmarks68.clone()
    lm[embedding.jaw_landmarks.to(lm.device)] = embedding.jaw_anchors.to(lm)
    return replace(
        model, contour_candidates=cand, landmarks68=lm,
        landmark_vertices=model.landmarks68 if model.landmark_vertices is None else model.landmark_vertices,
        own_contour_candidates=old if model.own_contour_candidates is None else model.own_contour_candidates,
    )


def own_landmarks(model: MorphableModel) -> MorphableModel:
    """``model`` with its own landmark vertices and contour lines (what :func:`embed_landmarks` replaced).

    The embedded virtual points stay in the model (unused by ``landmarks68``)."""
    out = model
    if model.landmark_vertices is not None:
        out = replace(out, landmarks68=model.landmark_vertices)
    if model.own_contour_candidates is not None:
        out = replace(out, contour_candidates=model.own_contour_candidates)
    return out
