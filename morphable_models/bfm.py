"""BFM as packaged by 3DDFA-V3 (``assets/face_model.npy``): read safely, convert once.

The file is a pickled dict (``np.save`` of a Python object). It is read with
:func:`morphable_models.safe_npy.load_npy_object` (no arbitrary code) and converted into the
project's ``.npz`` cache. Keys used (3DDFA-V3 assets README / its ``face_model`` class):

* ``u`` [3V] mean shape (x, y, z interleaved), ``id`` [3V, 80], ``exp`` [3V, 64] bases
  (already scaled by their standard deviations: coefficients ~ N(0, 1));
* ``tri`` [F, 3] triangles, ``ldm68`` [68] landmark vertices (0-based);
* ``annotation``: 8 index arrays in the order right_eye, left_eye, right_eyebrow, left_eyebrow,
  nose, up_lip, down_lip, skin (the paper's part annotation);
* ``parallel``: 33 lists of vertices, the contour lines of the 33 face-profile points of the
  106-point scheme (0..15 the person's right, 16 the chin, 17..32 the left); the 17 jaw landmarks
  of iBUG-68 are every second one (jaw landmark j <- line 2j);
* optional ``u_alb`` [3V] mean albedo (0..255 or 0..1) -> ``model.albedo`` in [0, 1].

Units are whatever the file uses (3DDFA-V3: about a decimetre per unit); ``mm_per_unit`` is
estimated from the face width.
"""
from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from morphable_models.cache import CacheMeta, save_model
from morphable_models.errors import ModelError
from morphable_models.model import PART_NAMES, MorphableModel
from morphable_models.orientation import apply_flips, axis_flips_from_landmarks, fix_winding
from morphable_models.safe_npy import load_npy_object

CONVERTER = "bfm"
CONVERTER_VERSION = 1
LICENSE = "Basel Face Model: non-commercial research licence (University of Basel); 3DDFA-V3 assets"
SOURCE_ENV = "PRDLFIT_BFM_SOURCE"
REQUIRED_KEYS = ("u", "id", "exp", "tri", "ldm68", "annotation", "parallel")
#: typical bizygomatic face width, used to guess the file's length unit
FACE_WIDTH_MM = 140.0
_UNITS = {"mm": 1.0, "cm": 10.0, "dm": 100.0, "m": 1000.0, "um": 0.001, "10um": 0.01}


def read_face_model(path: Path) -> Dict[str, object]:
    """The dict stored in a 3DDFA-V3 ``face_model.npy``.

    Raises:
        ModelError: unreadable, not a dict, forbidden pickle content, or required keys missing
            (the message lists them).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"BFM face model not found: {path}")
    try:
        data = load_npy_object(path)
    except pickle.UnpicklingError as e:
        raise ModelError(f"{path}: refused to unpickle ({e}); only numpy arrays and plain containers are allowed") from None
    except (ValueError, OSError, EOFError) as e:
        raise ModelError(f"{path}: not a readable .npy file ({e})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a pickled dict like 3DDFA-V3's face_model.npy, got {type(data).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ModelError(f"{path}: missing keys {missing} (a 3DDFA-V3 face_model.npy has {list(REQUIRED_KEYS)})")
    return data


def guess_mm_per_unit(mean: np.ndarray, landmarks: np.ndarray):
    """(unit name, mm per unit) whose scale makes the jaw width (lm 0-16) closest to a real face."""
    width = float(np.linalg.norm(mean[landmarks[16]] - mean[landmarks[0]]))
    name = min(_UNITS, key=lambda u: abs(np.log(width * _UNITS[u] / FACE_WIDTH_MM)))
    return name, _UNITS[name]


def jaw_candidates(mean: np.ndarray, parallel: List[np.ndarray], landmarks: np.ndarray) -> np.ndarray:
    """[17, L] contour candidates from the 33 profile lines (line 2j for jaw landmark j), ordered
    from the face's midline outwards around a vertical axis, with the landmark itself included."""
    x_mid = mean[landmarks[27], 0]
    half = 0.5 * abs(mean[landmarks[16], 0] - mean[landmarks[0], 0])
    z_axis = mean[landmarks[[0, 16]], 2].mean() - half
    rows = []
    for j in range(17):
        line = np.unique(np.r_[np.asarray(parallel[2 * j], dtype=np.int64).reshape(-1), landmarks[j]])
        p = mean[line]
        angle = np.arctan2(np.abs(p[:, 0] - x_mid), p[:, 2] - z_axis)
        rows.append(line[np.lexsort((line, angle))])
    L = max(len(r) for r in rows)
    out = np.full((17, L), -1, dtype=np.int64)
    for j, r in enumerate(rows):
        out[j, :len(r)] = r
    return out


def model_from_dict(data: Dict[str, object], source: str) -> MorphableModel:
    """Build the MorphableModel from the face_model dict (keys checked by :func:`read_face_model`).

    Raises:
        ModelError: inconsistent sizes.
    """
    try:
        u = np.asarray(data["u"], dtype=np.float64).reshape(-1, 3)
        V = len(u)
        id_b = np.asarray(data["id"], dtype=np.float64).reshape(V, 3, -1).transpose(2, 0, 1)
        exp_b = np.asarray(data["exp"], dtype=np.float64).reshape(V, 3, -1).transpose(2, 0, 1)
        tri = np.asarray(data["tri"], dtype=np.int64).reshape(-1, 3)
        lm = np.asarray(data["ldm68"], dtype=np.int64).reshape(-1)
        annotation = [np.asarray(a, dtype=np.int64).reshape(-1) for a in data["annotation"]]
        parallel = [np.asarray(p, dtype=np.int64).reshape(-1) for p in data["parallel"]]
    except (ValueError, TypeError) as e:
        raise ModelError(f"{source}: inconsistent face model arrays ({e})") from None
    if tri.min() == 1 and tri.max() == V:
        tri = tri - 1  # 1-based (Matlab) triangles
    if len(annotation) != 8 or len(parallel) != 33 or lm.shape != (68,):
        raise ModelError(f"{source}: expected 8 annotation parts, 33 parallel lines and 68 landmarks, got "
                         f"{len(annotation)}, {len(parallel)}, {lm.shape[0]}")
    flips = axis_flips_from_landmarks(u[lm])
    u = apply_flips(u, flips)
    id_b, exp_b = apply_flips(id_b, flips), apply_flips(exp_b, flips)
    tri = fix_winding(tri, flips)
    unit, mm = guess_mm_per_unit(u, lm)
    albedo = None
    if "u_alb" in data:
        alb = np.asarray(data["u_alb"], dtype=np.float64).reshape(V, 3)
        albedo = torch.from_numpy(np.clip(alb / (255.0 if alb.max() > 1.5 else 1.0), 0, 1).astype(np.float32))
    n_id, n_exp = id_b.shape[0], exp_b.shape[0]
    f32 = lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # noqa: E731
    i64 = lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.int64))  # noqa: E731
    model = MorphableModel(
        name="bfm", mean=f32(u), id_basis=f32(id_b), exp_basis=f32(exp_b),
        exp_names=[f"exp{k:02d}" for k in range(n_exp)], triangles=i64(tri), landmarks68=i64(lm),
        parts={name: i64(np.unique(a)) for name, a in zip(PART_NAMES, annotation)}, num_mesh_vertices=V,
        contour_candidates=i64(jaw_candidates(u, parallel, lm)), id_std=torch.ones(n_id),
        exp_std=torch.ones(n_exp), exp_lower=torch.full((n_exp,), -float("inf")),
        exp_upper=torch.full((n_exp,), float("inf")), albedo=albedo, units=unit, mm_per_unit=mm,
        license=LICENSE, source=f"3DDFA-V3 face_model.npy ({source})",
    )
    try:
        model.validate()
    except ValueError as e:
        raise ModelError(f"{source}: {e}") from None
    return model


def source_stamp(path: Path) -> Dict[str, object]:
    """Cheap identity of a source file (resolved path, size, mtime) to detect a changed file."""
    st = Path(path).stat()
    return {"source_path": str(Path(path).resolve()), "source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns}


def convert(source: Path, out_path: Path, progress: bool = True) -> CacheMeta:
    """Convert a 3DDFA-V3 ``face_model.npy`` into the cache file ``out_path``."""
    t0 = time.perf_counter()
    source = Path(source)
    if source.is_dir():
        source = source / "face_model.npy"
    data = read_face_model(source)
    model = model_from_dict(data, str(source))
    provenance = dict(source_stamp(source), convert_seconds=round(time.perf_counter() - t0, 2))
    return save_model(model, out_path, CONVERTER, CONVERTER_VERSION, provenance)
