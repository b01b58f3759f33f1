"""The compact ICT-FaceKit model shipped inside the package (the default model with no download).

The embedded file is an ordinary cache file of :mod:`morphable_models.cache` (same arrays, same
``meta``), stored smaller: the identity and expression bases as float16, the indices as int32, the
archive deflate-compressed (``np.savez_compressed``). It keeps every point of the float32
conversion (the fit uses the face parts, the written mesh every mesh vertex). ``cache.load_model``
reads it unchanged and casts to float32 / int64 tensors.

float16 keeps 11 significant bits: the bases' largest entries (1.3 cm identity, 3.8 cm expression)
are stored to within 0.5 ulp, at most 0.001 cm = 0.01 mm. The mean shape stays float32.

Rebuild it from the upstream files with ``python scripts/build_embedded_model.py --source DIR``.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np

from morphable_models.cache import CacheMeta
from morphable_models.files import atomic_path

PathLike = Union[str, Path]
DATA_DIR = Path(__file__).with_name("data")
#: the embedded model file (and the upstream licence text beside it)
EMBEDDED_FILES: Dict[str, Path] = {"ict": DATA_DIR / "ict_facekit.npz"}
LICENSE_FILES: Dict[str, Path] = {"ict": DATA_DIR / "ict_facekit_LICENSE.txt"}
#: arrays stored as float16 (everything else keeps its cache dtype, indices become int32)
HALF_FIELDS = ("id_basis", "exp_basis")
INDEX_DTYPE = np.int32
#: provenance keys of a local conversion that say nothing about the shipped file
_LOCAL_KEYS = ("source_folder", "convert_seconds")


def embedded_path(name: str) -> Optional[Path]:
    """The package's embedded file for model ``name``, or None when it ships none."""
    path = EMBEDDED_FILES.get(name)
    return path if path is not None and path.is_file() else None


def compact_arrays(arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Cache arrays -> the embedded dtypes: :data:`HALF_FIELDS` float16, integer arrays int32
    (``meta``, uint8, stays); the other floats unchanged."""
    out = {}
    for key, a in arrays.items():
        if key in HALF_FIELDS:
            out[key] = a.astype(np.float16)
        elif np.issubdtype(a.dtype, np.integer) and key != "meta":
            if a.size and (a.max() > np.iinfo(INDEX_DTYPE).max or a.min() < np.iinfo(INDEX_DTYPE).min):
                raise ValueError(f"{key}: indices do not fit {np.dtype(INDEX_DTYPE).name}")
            out[key] = a.astype(INDEX_DTYPE)
        else:
            out[key] = a
    return out


def write_embedded(cache_file: PathLike, out: PathLike) -> Path:
    """Write the compact copy of the float32 cache file ``cache_file`` to ``out`` (atomically).

    The metadata is the cache's, less the machine-local provenance (source folder, seconds), plus
    ``provenance["embedded"]`` naming the storage.
    """
    with np.load(Path(cache_file), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = CacheMeta.from_json(bytes(arrays["meta"]).decode("utf-8"))
    for key in _LOCAL_KEYS:
        meta.provenance.pop(key, None)
    meta.provenance["embedded"] = (f"{', '.join(HALF_FIELDS)} float16, indices int32, compressed; "
                                   "made by morphable_models.embedded")
    arrays["meta"] = np.frombuffer(meta.to_json().encode("utf-8"), dtype=np.uint8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **compact_arrays(arrays))
    return out


def build_embedded_ict(source: PathLike, out: Optional[PathLike] = None, progress: bool = True) -> Path:
    """Convert the upstream ICT-FaceKit files in ``source`` and write the embedded file ``out``
    (default: the package's :data:`EMBEDDED_FILES` ``["ict"]``); returns ``out``."""
    from morphable_models import ict

    out = Path(out) if out is not None else EMBEDDED_FILES["ict"]
    with tempfile.TemporaryDirectory(prefix="prdlfit-embed-") as tmp:
        full = Path(tmp) / "ict.npz"
        ict.convert(Path(source), full, progress)
        return write_embedded(full, out)

