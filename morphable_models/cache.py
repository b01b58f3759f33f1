"""The converted-model cache format: one uncompressed ``.npz`` (no pickles) + a JSON sidecar.

The ``.npz`` holds every tensor of a :class:`MorphableModel` (float32, int64) and its own metadata
(``meta``: UTF-8 JSON as a uint8 array), so a single file is a complete model. The sidecar
``<name>.json`` repeats the metadata for listing models without reading arrays. Files are written
atomically. A file whose ``format_version`` differs from :data:`FORMAT_VERSION` is refused with
:class:`~morphable_models.errors.ModelError`; the registry rebuilds its own caches in that case.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np
import torch

from morphable_models.errors import ModelError
from morphable_models.files import atomic_path, write_text_atomic
from morphable_models.model import PART_NAMES, MorphableModel

FORMAT_VERSION = 1
PathLike = Union[str, Path]

_FLOAT_FIELDS = ("mean", "id_basis", "exp_basis", "id_std", "exp_std", "exp_lower", "exp_upper")
_INDEX_FIELDS = ("triangles", "hole_triangles", "landmarks68", "contour_candidates")


@dataclass
class CacheMeta:
    """What a cache file says about itself (also the sidecar JSON)."""

    name: str
    converter: str
    converter_version: int
    units: str
    mm_per_unit: float
    license: str
    source: str
    exp_names: list
    num_mesh_vertices: int
    num_points: int
    num_triangles: int
    num_id: int
    num_exp: int
    part_sizes: Dict[str, int]
    has_albedo: bool = False
    #: free-form provenance: source commit, input checksums, source path/size/mtime
    provenance: Dict[str, object] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "CacheMeta":
        data = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def sidecar_path(path: PathLike) -> Path:
    return Path(path).with_suffix(".json")


def save_model(model: MorphableModel, path: PathLike, converter: str, converter_version: int,
               provenance: Optional[Dict[str, object]] = None,
               virtual_index: Optional[np.ndarray] = None,
               virtual_weight: Optional[np.ndarray] = None) -> CacheMeta:
    """Write ``model`` to ``path`` (.npz) and its sidecar JSON, atomically.

    Args:
        converter / converter_version: who made it; a registry rebuilds when its version is newer.
        provenance: JSON-serializable facts about the inputs.
        virtual_index / virtual_weight: [P, 4] the virtual points' fixed linear combinations of mesh
            vertices (kept for inspection and tests; the model already holds the materialized rows).
    Returns:
        the written metadata.
    """
    model.validate()
    m = model.to("cpu")
    meta = CacheMeta(
        name=m.name, converter=converter, converter_version=int(converter_version), units=m.units,
        mm_per_unit=float(m.mm_per_unit), license=m.license, source=m.source, exp_names=list(m.exp_names),
        num_mesh_vertices=int(m.num_mesh_vertices), num_points=m.num_points,
        num_triangles=int(m.triangles.shape[0]), num_id=m.num_id, num_exp=m.num_exp,
        part_sizes={k: int(m.parts[k].numel()) for k in PART_NAMES}, has_albedo=m.albedo is not None,
        provenance=dict(provenance or {}),
    )
    arrays = {k: getattr(m, k).numpy().astype(np.float32) for k in _FLOAT_FIELDS}
    arrays.update({k: getattr(m, k).numpy().astype(np.int64) for k in _INDEX_FIELDS})
    for k in PART_NAMES:
        arrays[f"part__{k}"] = m.parts[k].numpy().astype(np.int64)
    if m.albedo is not None:
        arrays["albedo"] = m.albedo.numpy().astype(np.float32)
    if virtual_index is not None:
        arrays["virtual_index"] = np.asarray(virtual_index, dtype=np.int64)
        arrays["virtual_weight"] = np.asarray(virtual_weight, dtype=np.float32)
    arrays["meta"] = np.frombuffer(meta.to_json().encode("utf-8"), dtype=np.uint8)
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    write_text_atomic(sidecar_path(path), meta.to_json())
    return meta


def _bad(path: Path, why: str) -> ModelError:
    return ModelError(f"{path} is not a usable prdlfit model file ({why}); "
                      f"rebuild it with `prdlfit models prepare NAME --force`")


def _require_npz(path: Path) -> None:
    """ModelError unless ``path`` starts like a zip archive (an ``.npz``): random bytes or a plain
    ``.npy`` would otherwise reach numpy's pickle fallback and get a message about pickled data.
    A damaged archive passes here and is reported as such by the reader."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise ModelError(f"cannot read model file {path}: {e.strerror or e}") from None
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip's first bytes (a truncated one keeps them)
        raise ModelError(f"{path} is not a model file: a prdlfit model is an .npz archive made by "
                         f"`prdlfit models prepare` (or give a model name: ict, sfm, bfm)")


def read_meta(path: PathLike) -> CacheMeta:
    """Metadata of a cache file: from the sidecar JSON when present, else from the .npz.

    Raises:
        ModelError: missing, unreadable or not a cache file.
    """
    path = Path(path)
    side = sidecar_path(path)
    if side.is_file() and path.is_file():
        try:
            return CacheMeta.from_json(side.read_text("utf-8"))
        except (ValueError, TypeError):
            pass  # fall back to the copy inside the archive
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    _require_npz(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return CacheMeta.from_json(bytes(z["meta"]).decode("utf-8"))
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as e:
        raise _bad(path, f"{type(e).__name__}: {e}") from None


def read_virtual_weights(path: PathLike):
    """([P, 4] int64, [P, 4] float32) virtual-point combinations stored in a cache file."""
    with np.load(Path(path), allow_pickle=False) as z:
        if "virtual_index" not in z.files:
            return np.zeros((0, 4), np.int64), np.zeros((0, 4), np.float32)
        return z["virtual_index"], z["virtual_weight"]


def load_model(path: PathLike, device=None) -> MorphableModel:
    """Read a cache file into a :class:`MorphableModel` (validated), optionally on ``device``.

    Raises:
        ModelError: missing file, corrupt archive, missing arrays, wrong format version, or
            inconsistent shapes (one line naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    _require_npz(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = CacheMeta.from_json(bytes(z["meta"]).decode("utf-8"))
            if meta.format_version != FORMAT_VERSION:
                raise _bad(path, f"format version {meta.format_version}, this prdlfit reads {FORMAT_VERSION}")
            t = {k: torch.from_numpy(np.ascontiguousarray(z[k], dtype=np.float32)) for k in _FLOAT_FIELDS}
            t.update({k: torch.from_numpy(np.ascontiguousarray(z[k], dtype=np.int64)) for k in _INDEX_FIELDS})
            parts = {k: torch.from_numpy(np.ascontiguousarray(z[f"part__{k}"], dtype=np.int64)) for k in PART_NAMES}
            albedo = torch.from_numpy(np.ascontiguousarray(z["albedo"], dtype=np.float32)) if "albedo" in z.files else None
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as e:
        raise _bad(path, f"{type(e).__name__}: {e}") from None
    model = MorphableModel(
        name=meta.name, exp_names=list(meta.exp_names), parts=parts, num_mesh_vertices=meta.num_mesh_vertices,
        albedo=albedo, units=meta.units, mm_per_unit=meta.mm_per_unit, license=meta.license,
        source=meta.source, **t)
    try:
        model.validate()
    except ValueError as e:
        raise _bad(path, str(e)) from None
    return model.to(device) if device is not None else model
