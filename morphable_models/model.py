"""The one model interface every downstream module sees.

A :class:`MorphableModel` is a linear shape model

    V(id, exp) = mean + id · id_basis + exp · exp_basis            (model space)

(optionally with a few expression coefficients scaled by a linear function of the identity first:
:func:`scale_expressions`, :mod:`morphable_models.lid_scaling`)

Conventions (all loaders convert to these):

* model space is right-handed, **+Y up, +Z towards the viewer (out of the face), +X towards the
  person's own left** (the viewer's right in a frontal photo);
* lengths are in ``units`` (``"cm"`` for ICT-FaceKit, ``"mm"`` for SFM, BFM keeps its own);
  ``mm_per_unit`` converts to millimetres;
* tensors are float32 (indices int64); batch dimension first everywhere;
* "right"/"left" in part names are the person's own right/left.

Virtual points (for example the eye-opening fill of ICT-FaceKit) are fixed linear combinations of
mesh vertices. They are appended *after* the ``num_mesh_vertices`` mesh vertices in ``mean`` and in
both bases, so ``vertices()`` returns them and they move with every coefficient, differentiably.
``triangles`` index mesh vertices only (what a mesh file holds); ``hole_triangles`` cover the filled
openings and may index virtual points (used when rasterizing part labels).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from morphable_models.part_labels import triangle_labels

#: The paper's 8 parts, in the order of the label map written by ``prdlfit fit`` (label = index + 1).
PART_NAMES: Tuple[str, ...] = (
    "right_eye",
    "left_eye",
    "right_brow",
    "left_brow",
    "nose",
    "up_lip",
    "down_lip",
    "skin",
)

#: iBUG-68 indices of the jaw contour (0..16): the landmarks that march along the face profile.
JAW_LANDMARKS: Tuple[int, ...] = tuple(range(17))

#: iBUG-68 regions (0-based), as the per-region NME reports them
REGIONS_68: Dict[str, Tuple[int, ...]] = {"jaw": JAW_LANDMARKS, "brows": tuple(range(17, 27)),
                                          "nose": tuple(range(27, 36)), "eyes": tuple(range(36, 48)),
                                          "mouth": tuple(range(48, 68))}

#: iBUG-68 eyes (the person's own right, then left): their (upper, lower) lid landmark pairs and
#: their two corners (0-based). Read by the eye-closure term, the identity-scaled blinks and the
#: front end's lid calibration.
EYE_LIDS_68: Dict[str, Tuple[Tuple[Tuple[int, int], ...], Tuple[int, int]]] = {
    "right_eye": (((37, 41), (38, 40)), (36, 39)),
    "left_eye": (((43, 47), (44, 46)), (42, 45)),
}


#: iBUG-68 outlines of the parts the 68 points enclose, each a closed ring of arcs (0-based): a
#: part is the region inside its arcs joined end to end, each arc a smooth curve through its
#: points (the eyes' lids meet at the corners; each lip is its outer contour's half and the inner
#: contour's half between the mouth corners). Read by the evaluation's annotated part outlines.
OUTLINE_ARCS_68: Dict[str, Tuple[Tuple[int, ...], ...]] = {
    "right_eye": ((36, 37, 38, 39), (39, 40, 41, 36)),
    "left_eye": ((42, 43, 44, 45), (45, 46, 47, 42)),
    "up_lip": ((48, 49, 50, 51, 52, 53, 54), (64, 63, 62, 61, 60)),
    "down_lip": ((54, 55, 56, 57, 58, 59, 48), (60, 67, 66, 65, 64)),
}


#: the range of an identity's factor on a scaled expression (:func:`scale_expressions`)
EXP_SCALE_MIN, EXP_SCALE_MAX = 0.5, 1.5


def scale_expressions(id_coeffs: Optional[Tensor], exp_coeffs: Tensor, index: Tensor, gain: Tensor) -> Tensor:
    """exp' [B, k]: ``exp_coeffs`` [B, k] with the coefficients ``index`` [E] multiplied by
    ``clamp(1 + id · gain[e], EXP_SCALE_MIN, EXP_SCALE_MAX)`` (gain [E, K_id]; id [B, k_id ≤ K_id],
    or None: unchanged)."""
    if id_coeffs is None or id_coeffs.shape[1] == 0:
        return exp_coeffs
    keep = index < exp_coeffs.shape[1]
    if not bool(keep.any()):
        return exp_coeffs
    index, gain = index[keep], gain[keep]
    s = (1.0 + id_coeffs.to(gain.dtype) @ gain[:, : id_coeffs.shape[1]].T).clamp(EXP_SCALE_MIN, EXP_SCALE_MAX)
    factor = torch.ones_like(exp_coeffs).index_copy(1, index, s.to(exp_coeffs.dtype))  # [B, k]
    return exp_coeffs * factor


def blend_shape(mean: Tensor, id_basis: Tensor, exp_basis: Tensor, id_coeffs: Optional[Tensor],
                exp_coeffs: Optional[Tensor], exp_scale: Optional[Tuple[Tensor, Tensor]] = None) -> Tensor:
    """``mean + id · id_basis + exp · exp_basis``: [B, V, 3] from mean [V, 3], bases [K, V, 3] and
    coefficients [B, k ≤ K] (None or k = 0: that basis is left out; B = 1 when both are None).
    ``exp_scale`` = (index [E], gain [E, K_id]) scales those expression coefficients by the identity
    first (:func:`scale_expressions`)."""
    if exp_scale is not None and exp_coeffs is not None and exp_coeffs.dim() == 2:
        exp_coeffs = scale_expressions(id_coeffs, exp_coeffs, *exp_scale)
    B = 1
    for c in (id_coeffs, exp_coeffs):
        if c is not None:
            if c.dim() != 2:
                raise ValueError(f"coefficients must be [B, K], got shape {tuple(c.shape)}")
            B = c.shape[0]
    out = mean.unsqueeze(0).expand(B, -1, -1)
    for coeffs, basis in ((id_coeffs, id_basis), (exp_coeffs, exp_basis)):
        if coeffs is None or coeffs.shape[1] == 0:
            continue
        k = coeffs.shape[1]
        if k > basis.shape[0]:
            raise ValueError(f"got {k} coefficients for a basis of {basis.shape[0]}")
        delta = torch.einsum("bk,kvc->bvc", coeffs.to(basis.dtype), basis[:k])
        out = out + delta
    return out


@dataclass(frozen=True)
class ShapeRows:
    """A subset of a model's points with their mean and basis rows gathered
    (:meth:`MorphableModel.rows`): the shape of only the points a computation reads.

    Shapes: index [S] long; mean [S, 3]; id_basis [K_id, S, 3]; exp_basis [K_exp, S, 3].
    """

    index: Tensor
    mean: Tensor
    id_basis: Tensor
    exp_basis: Tensor
    exp_scale: Optional[Tuple[Tensor, Tensor]] = None

    def vertices(self, id_coeffs: Optional[Tensor] = None, exp_coeffs: Optional[Tensor] = None) -> Tensor:
        """[B, S, 3] model-space points of the subset (see :meth:`MorphableModel.vertices`)."""
        return blend_shape(self.mean, self.id_basis, self.exp_basis, id_coeffs, exp_coeffs, self.exp_scale)


@dataclass
class MorphableModel:
    """A 3D morphable face model in the project's conventions (see module docstring).

    Shapes: ``V`` = all points (mesh vertices then virtual points), ``K_id``/``K_exp`` = number of
    identity/expression coefficients, ``F`` = mesh triangles.
    """

    name: str
    #: [V, 3] mean shape, model units.
    mean: Tensor
    #: [K_id, V, 3] identity basis; an identity coefficient of 1 moves by one basis vector.
    id_basis: Tensor
    #: [K_exp, V, 3] expression basis (blendshape deltas).
    exp_basis: Tensor
    #: names of the expression coefficients (ARKit names for ICT-FaceKit).
    exp_names: List[str]
    #: [F, 3] int64 mesh triangles (indices < num_mesh_vertices).
    triangles: Tensor
    #: [68] int64 vertex index of each iBUG-68 landmark.
    landmarks68: Tensor
    #: part name -> int64 indices of its points (vertices and virtual points), keys = PART_NAMES.
    parts: Dict[str, Tensor]
    #: number of real mesh vertices; points at index >= this are virtual.
    num_mesh_vertices: int
    #: [17, L] int64 candidate vertices for each jaw landmark 0..16, ordered from the inner face
    #: towards the outer profile; padded with -1.
    contour_candidates: Tensor
    #: [K_id] prior standard deviation of the identity coefficients (N(0, std^2)).
    id_std: Tensor
    #: [K_exp] prior standard deviation of the expression coefficients.
    exp_std: Tensor
    #: [K_exp] lower / upper bounds of expression coefficients (-inf/inf where unbounded).
    exp_lower: Tensor
    exp_upper: Tensor
    #: [Fh, 3] int64 triangles that cover filled openings (may index virtual points); may be empty.
    hole_triangles: Tensor = field(default_factory=lambda: torch.zeros(0, 3, dtype=torch.long))
    #: [V, 3] mean per-vertex albedo in [0, 1], or None for models without colour.
    albedo: Optional[Tensor] = None
    #: [68] int64 the model's own landmark vertices, kept when ``landmarks68`` was re-pointed at
    #: embedded points (:func:`morphable_models.landmark_embedding.embed_landmarks`); else None.
    landmark_vertices: Optional[Tensor] = None
    #: [17, L] int64 the model's own ``contour_candidates``, kept when an embedding replaced the
    #: jaw lines; else None.
    own_contour_candidates: Optional[Tensor] = None
    #: [K] int64 points (virtual, on the surface) that stand for K points of a front end's dense
    #: face mesh, and [K] int64 those points' indices in that mesh (MediaPipe's 478); None without
    #: a table (:func:`morphable_models.mesh_landmarks.embed_mesh_landmarks`).
    mesh_landmarks: Optional[Tensor] = None
    mesh_landmark_ids: Optional[Tensor] = None
    #: the model's own part annotation, kept when ``parts`` were drawn with the front end's polygons
    #: (:func:`morphable_models.frontend_parts.frontend_parts`); else None.
    own_parts: Optional[Dict[str, Tensor]] = None
    #: [E] int64 expression coefficients scaled by the identity before blending, and [E, K_id] their
    #: gains (:func:`scale_expressions`; :mod:`morphable_models.lid_scaling`); None = a linear model.
    exp_scale_index: Optional[Tensor] = None
    exp_scale_gain: Optional[Tensor] = None
    units: str = "cm"
    mm_per_unit: float = 10.0
    license: str = ""
    source: str = ""

    # ------------------------------------------------------------------ sizes
    @property
    def num_points(self) -> int:
        """V: mesh vertices plus virtual points."""
        return int(self.mean.shape[0])

    @property
    def num_id(self) -> int:
        return int(self.id_basis.shape[0])

    @property
    def num_exp(self) -> int:
        return int(self.exp_basis.shape[0])

    @property
    def device(self) -> torch.device:
        return self.mean.device

    # ------------------------------------------------------------------ shape
    def vertices(self, id_coeffs: Optional[Tensor] = None, exp_coeffs: Optional[Tensor] = None) -> Tensor:
        """Model-space points for a batch of coefficients.

        Args:
            id_coeffs: [B, K_id] (or fewer leading coefficients, [B, k <= K_id]); None = zeros.
            exp_coeffs: [B, K_exp] (or [B, k <= K_exp]); None = zeros.
        Returns:
            [B, V, 3] points in model units (virtual points after the mesh vertices).
        """
        return blend_shape(self.mean, self.id_basis, self.exp_basis, id_coeffs, exp_coeffs, self.exp_scale)

    @property
    def exp_scale(self) -> Optional[Tuple[Tensor, Tensor]]:
        """(index [E], gain [E, K_id]) of the identity-scaled expressions, or None (a linear model)."""
        if self.exp_scale_index is None or self.exp_scale_gain is None:
            return None
        return self.exp_scale_index, self.exp_scale_gain

    def effective_exp(self, id_coeffs: Optional[Tensor], exp_coeffs: Tensor) -> Tensor:
        """[B, k] the expression coefficients the bases are blended with (``exp_coeffs`` itself for a
        linear model)."""
        scale = self.exp_scale
        return exp_coeffs if scale is None else scale_expressions(id_coeffs, exp_coeffs, *scale)

    def rows(self, index: Tensor) -> "ShapeRows":
        """The points ``index`` [S] (long) of the model, their mean and basis rows gathered once:
        ``rows(index).vertices(id, exp) == vertices(id, exp)[:, index]`` at |S|/V of the cost."""
        index = index.to(device=self.device, dtype=torch.long)
        return ShapeRows(index, self.mean[index], self.id_basis[:, index].contiguous(),
                         self.exp_basis[:, index].contiguous(), self.exp_scale)

    def exp_index(self, name: str) -> int:
        """Index of an expression coefficient by name (KeyError naming the choices if unknown)."""
        try:
            return self.exp_names.index(name)
        except ValueError:
            raise KeyError(f"{self.name} has no expression {name!r}; it has {self.exp_names}") from None

    def arkit_sources(self) -> Optional[Dict[str, Tuple[int, ...]]]:
        """ARKit name -> indices of the expression coefficients feeding it (all 52 names), or None
        when this model declares no ARKit mapping; see :mod:`morphable_models.arkit`."""
        from morphable_models.arkit import arkit_sources

        return arkit_sources(self.exp_names)

    def part_labels(self) -> Tensor:
        """[V] int64 label per point: 0 = no part, i + 1 = PART_NAMES[i]."""
        lab = torch.zeros(self.num_points, dtype=torch.long, device=self.device)
        for i, name in enumerate(PART_NAMES):
            lab[self.parts[name]] = i + 1
        return lab

    @property
    def all_triangles(self) -> Tensor:
        """[F + Fh, 3] int64: the mesh ``triangles`` then the ``hole_triangles`` (on the device and
        in the dtype of ``triangles``); what part label maps rasterize. Computed on each access
        (cheap), so it follows ``.to()`` and edits of the fields."""
        return torch.cat([self.triangles, self.hole_triangles.to(self.triangles)], 0)

    @property
    def triangle_part_labels(self) -> Tensor:
        """[F + Fh] int64 part label of each of :attr:`all_triangles`: 0 = no part, p + 1 =
        PART_NAMES[p] (the label at least two of its points share in :meth:`part_labels`, see
        :func:`morphable_models.part_labels.triangle_labels`). Computed on each access."""
        return triangle_labels(self.all_triangles, self.part_labels())

    # ------------------------------------------------------------------ housekeeping
    def to(self, device=None, dtype: Optional[torch.dtype] = None) -> "MorphableModel":
        """A copy on ``device``; floating tensors cast to ``dtype`` when given."""

        def move(v):
            if isinstance(v, Tensor):
                if v.is_floating_point() and dtype is not None:
                    return v.to(device=device, dtype=dtype)
                return v.to(device=device)
            if isinstance(v, dict):
                return {k: move(x) for k, x in v.items()}
            return v

        return replace(self, **{f.name: move(getattr(self, f.name)) for f in fields(self)})

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistency (shapes, index ranges, part names)."""
        V = self.num_points
        checks = [
            (self.mean.dim() == 2 and self.mean.shape[1] == 3, f"mean must be [V,3], got {tuple(self.mean.shape)}"),
            (self.id_basis.shape[1:] == (V, 3), f"id_basis must be [K,{V},3], got {tuple(self.id_basis.shape)}"),
            (self.exp_basis.shape[1:] == (V, 3), f"exp_basis must be [K,{V},3], got {tuple(self.exp_basis.shape)}"),
            (len(self.exp_names) == self.num_exp, "exp_names length differs from exp_basis"),
            (self.triangles.dim() == 2 and self.triangles.shape[1] == 3, "triangles must be [F,3]"),
            (int(self.triangles.max()) < self.num_mesh_vertices, "triangles index past the mesh vertices"),
            (self.landmarks68.shape == (68,), f"landmarks68 must be [68], got {tuple(self.landmarks68.shape)}"),
            (set(self.parts) == set(PART_NAMES), f"parts must be keyed {PART_NAMES}, got {sorted(self.parts)}"),
            (self.contour_candidates.dim() == 2 and self.contour_candidates.shape[0] == 17,
             "contour_candidates must be [17, L]"),
            (self.id_std.shape == (self.num_id,) and self.exp_std.shape == (self.num_exp,), "prior std sizes"),
            (self.num_mesh_vertices <= V, "num_mesh_vertices exceeds the number of points"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"model {self.name}: {msg}")
        mesh, ids = self.mesh_landmarks, self.mesh_landmark_ids
        if (mesh is None) != (ids is None) or (
                mesh is not None and (mesh.shape != ids.shape or bool(((mesh < 0) | (mesh >= V)).any()))):
            raise ValueError(f"model {self.name}: mesh_landmarks and mesh_landmark_ids must be [K] (points in [0, {V}))")
        si, sg = self.exp_scale_index, self.exp_scale_gain
        if (si is None) != (sg is None) or (si is not None and (
                si.dim() != 1 or sg.shape != (si.shape[0], self.num_id)
                or bool(((si < 0) | (si >= self.num_exp)).any()))):
            raise ValueError(f"model {self.name}: exp_scale_index must be [E] expression indices and "
                             f"exp_scale_gain [E, {self.num_id}]")
        for name, idx in self.parts.items():
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= V):
                raise ValueError(f"model {self.name}: part {name} indexes outside [0, {V})")


def append_points(model: MorphableModel, index: Tensor, weight: Tensor,
                  offset: Optional[Tensor] = None) -> Tuple[MorphableModel, int]:
    """``(model with K virtual points appended, index of the first)``: point k is
    ``Σ_j weight[k, j] · X_{index[k, j]}`` of the model's existing points X (mesh vertices or earlier
    virtual points) in ``mean``, both bases and ``albedo``, so it moves linearly with every
    coefficient; ``offset`` [3] (model units, model frame) moves the mean's new points only. The new
    points belong to no part.

    Args:
        index: [K, J] int64 indices < ``model.num_points``. weight: [K, J] weights.
    """
    idx = torch.as_tensor(index, dtype=torch.long, device=model.device)
    w = torch.as_tensor(weight, dtype=model.mean.dtype, device=model.device)
    if idx.dim() != 2 or idx.shape != w.shape:
        raise ValueError(f"index and weight must be the same [K, J], got {tuple(idx.shape)} and {tuple(w.shape)}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= model.num_points):
        raise ValueError(f"point indices must be in [0, {model.num_points}) for model {model.name}")

    def points(table: Tensor) -> Tensor:  # [..., V, 3] -> [..., K, 3]
        return (table[..., idx, :] * w[:, :, None]).sum(-2)

    new_mean = points(model.mean)
    if offset is not None:
        new_mean = new_mean + torch.as_tensor(offset, dtype=model.mean.dtype, device=model.device)
    first = model.num_points
    return replace(
        model,
        mean=torch.cat([model.mean, new_mean], 0),
        id_basis=torch.cat([model.id_basis, points(model.id_basis)], 1),
        exp_basis=torch.cat([model.exp_basis, points(model.exp_basis)], 1),
        albedo=None if model.albedo is None else torch.cat([model.albedo, points(model.albedo)], 0),
    ), first
