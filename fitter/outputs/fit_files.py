"""``fit.npz`` (every array of a fit), ``fit.json`` (a readable summary) and ``.npy`` landmarks.

``fit.json`` is the completion marker of an output folder: :mod:`fitter.outputs.writer` writes it
last, so a folder that holds ``fit.json`` holds every other output of that fit.
"""
from __future__ import annotations

import io
import json
import math
import platform
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional

import numpy as np

from fitter.outputs.atomic import PathLike, write_bytes_atomic, write_text_atomic
from fitter.palette import PART_COLORS
from fitter.result import FitResult
from morphable_models.model import PART_NAMES, MorphableModel

#: version of the fit.json / fit.npz layout (bump on incompatible changes)
FORMAT_VERSION = 1

MESH_SPACE = ("camera space of the fitting camera, OpenCV axes (x right, y down, z forward, "
              "away from the camera), in model units")


def fit_arrays(result: FitResult) -> Dict[str, np.ndarray]:
    """Every array of ``result`` by name (the content of ``fit.npz``).

    Per-part predicted points are stored as ``part_points.<part>``; the camera as ``camera_K``
    ([3, 3]) plus ``camera_kind``; the crop as ``crop_matrix`` ([2, 3], original -> crop pixels),
    ``crop_size`` and ``original_size`` (width, height).
    """
    c = result.camera
    arrays: Dict[str, np.ndarray] = {
        "id_coeffs": result.id_coeffs,
        "exp_coeffs": result.exp_coeffs,
        "exp_names": np.array(result.exp_names, dtype=str),
        "rotation": result.rotation,
        "translation": result.translation,
        "euler_deg": result.euler_deg,
        "camera_K": c.intrinsics().astype(np.float32),
        "camera_kind": np.array(c.kind),
        "camera_size": np.array([c.width, c.height], dtype=np.int64),
        "vertices_model": result.vertices_model,
        "vertices_camera": result.vertices_camera,
        "vertices_image": result.vertices_image,
        "visible": result.visible,
        "landmarks2d": result.landmarks2d,
        "landmarks2d_original": result.landmarks2d_original(),
        "landmarks3d": result.landmarks3d,
    }
    for name in PART_NAMES:
        pts = result.part_points.get(name)
        arrays[f"part_points.{name}"] = np.zeros((0, 2), np.float32) if pts is None else pts
    if result.targets is not None:
        crop = result.targets.crop
        arrays["crop_matrix"] = crop.matrix()
        arrays["crop_size"] = np.array(crop.size, dtype=np.int64)
        arrays["original_size"] = np.array(crop.original_size, dtype=np.int64)
        arrays["target_landmarks"] = result.targets.landmarks
        arrays["target_landmark_valid"] = result.targets.landmark_valid
    return {k: np.asarray(v) for k, v in arrays.items()}


def write_npz(path: PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write a compressed ``.npz`` atomically; returns the path."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)


def write_npy(path: PathLike, array: np.ndarray) -> Path:
    """Write one array as ``.npy`` atomically; returns the path."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array))
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)


def _jsonable(x):
    """numpy scalars/arrays -> Python; NaN/inf -> None (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        f = float(x)
        return f if math.isfinite(f) else None
    if isinstance(x, Path):
        return str(x)
    if x is None or isinstance(x, str):
        return x
    return str(x)


def versions() -> Dict[str, str]:
    """Versions of prdlfit, Python, torch and numpy."""
    import torch

    import fitter

    return {"prdlfit": fitter.__version__, "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__}


def fit_summary(result: FitResult, model: MorphableModel, files: Optional[Mapping[str, str]] = None,
                target_config: Optional[object] = None) -> dict:
    """The ``fit.json`` content (JSON-ready): model, versions, config, pose, camera, losses, crop.

    Args:
        result: a fit of ``model``.
        files: output name -> file name of the other outputs written beside it.
        target_config: the image front end's options (a dataclass such as ``TargetConfig``), stored
            as ``target_config`` when given.
    """
    c = result.camera
    pitch, yaw, roll = (float(a) for a in result.euler_deg)
    t = result.targets
    summary = {
        "format": "prdlfit-fit",
        "format_version": FORMAT_VERSION,
        "image": t.source if t is not None else "",
        "face_index": t.face_index if t is not None else 0,
        "model": {
            "name": result.model_name, "units": model.units, "mm_per_unit": model.mm_per_unit,
            "license": model.license, "source": model.source, "num_points": model.num_points,
            "num_mesh_vertices": model.num_mesh_vertices, "num_triangles": int(model.triangles.shape[0]),
            "num_id": model.num_id, "num_exp": model.num_exp,
        },
        "versions": versions(),
        "config": result.config,
        "target_config": asdict(target_config) if is_dataclass(target_config) else None,
        "pose": {
            "euler_deg": {"pitch": pitch, "yaw": yaw, "roll": roll},
            "rotation": result.rotation,
            "translation": result.translation,
            "convention": "X_cam = R @ diag(1, -1, -1) @ X_model + t (see fitter.geometry.camera)",
        },
        "camera": {"kind": c.kind, "focal": c.focal, "cx": c.cx, "cy": c.cy, "width": c.width,
                   "height": c.height, "pixels": "fitting crop"},
        "crop": None if t is None else {
            "scale": t.crop.scale, "offset": t.crop.offset, "size": t.crop.size,
            "original_size": t.crop.original_size, "rotation": t.crop.rotation,
            "convention": "crop_xy = scale * R @ original_xy + offset, R = rotation quarter turns of np.rot90 "
                          "(0 = upright; crop_matrix in fit.npz is the whole map)",
        },
        "mesh": {"space": MESH_SPACE, "units": model.units, "vertices": model.num_mesh_vertices,
                 "vertex_colors": "part colours (see part_colors)"},
        "parts": {str(i + 1): name for i, name in enumerate(PART_NAMES)},
        "part_colors": {str(i): PART_COLORS[i] for i in range(len(PART_COLORS))},
        "landmarks2d": "68 x (x, y) iBUG points in original photo pixels",
        "landmarks3d": "68 x (x, y, z) camera space, model units",
        "final_losses": result.final_losses,
        "converged": result.converged,
        "iterations": result.iterations,
        "seconds": result.seconds,
        "targets": None if t is None else {"meta": t.meta, "present_parts": t.present_parts()},
        "files": dict(files or {}),
    }
    return _jsonable(summary)


def write_json(path: PathLike, summary: dict) -> Path:
    """Write a summary atomically as strict, indented JSON (no NaN); returns the path."""
    write_text_atomic(path, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return Path(path)


def read_json(path: PathLike, what: str) -> object:
    """The JSON value of ``path``; ValueError ``<path>: not a readable <what> (...)`` otherwise."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable {what} ({err})") from None


def write_fit_json(path: PathLike, summary: dict) -> Path:
    """Write ``fit.json`` atomically (strict JSON, indented); returns the path."""
    return write_json(path, summary)


def read_fit_json(path: PathLike) -> dict:
    """Read a ``fit.json`` (ValueError naming the file when it is not one)."""
    path = Path(path)
    data = read_json(path, "fit.json")
    if not isinstance(data, dict) or data.get("format") != "prdlfit-fit":
        raise ValueError(f"{path}: not a prdlfit fit.json")
    return data
