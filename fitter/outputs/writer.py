"""Every output of one fit into one folder, each file written atomically, ``fit.json`` last.

Layout of ``out_dir`` (``prdlfit fit`` uses ``DIR/<image stem>/``):

=================  =====================================================================
mesh.obj, .ply     posed mesh (camera space, model units) with part colours per vertex
fit.npz            every array of the fit (coefficients, pose, camera, vertices, points)
landmarks2d.npy    [68, 2] float32 fitted landmarks, x, y in original photo pixels
landmarks3d.npy    [68, 3] float32 fitted landmarks, camera space, model units
parts.png          uint8 label map at the photo's size (0 background, 1..8 parts)
overlay.png        photo | parts and landmarks | shaded mesh (optional)
curves.csv, .png   convergence log and its plot
snapshots.npz      projected points every N iterations (only with ``--snapshots N``)
neutral.obj        fitted identity at zero expression, model space (+Y up), model units
face.glb           glTF 2.0: neutral identity in metres, expression morph targets, fitted weights
blendshapes.json   the 52 ARKit weights and head pose (only models with an ARKit mapping)
fit.json           readable summary; written LAST: a folder with fit.json is complete
=================  =====================================================================

Before writing, an existing ``fit.json`` is removed, so a folder being rewritten never looks
complete; outputs of an earlier run that this run does not write (an old overlay.png or
snapshots.npz) are removed before ``fit.json`` appears.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import cv2
import numpy as np

from fitter.errors import FitError
from fitter.outputs.animation import snapshots_of
from fitter.outputs.atomic import PathLike, atomic_path, fsync_dir
from fitter.outputs.blendshapes import blendshapes_summary, write_blendshapes_json
from fitter.outputs.curves import history_chart, write_curves_csv
from fitter.outputs.face_rig import FaceRig, face_rig, rig_summary
from fitter.outputs.fit_files import fit_arrays, fit_summary, write_fit_json, write_npy, write_npz
from fitter.outputs.fitted_mesh import fitted_mesh
from fitter.outputs.gltf import write_glb
from fitter.outputs.mesh_io import write_obj, write_ply
from fitter.outputs.overlay import overlay_image
from fitter.outputs.parts_map import part_label_map
from fitter.result import FitResult
from morphable_models.model import MorphableModel

#: output name -> file name inside the per-image folder.
OUTPUT_FILES: Dict[str, str] = {
    "mesh_obj": "mesh.obj",
    "mesh_ply": "mesh.ply",
    "npz": "fit.npz",
    "landmarks2d": "landmarks2d.npy",
    "landmarks3d": "landmarks3d.npy",
    "parts": "parts.png",
    "overlay": "overlay.png",
    "curves_csv": "curves.csv",
    "curves_png": "curves.png",
    "snapshots": "snapshots.npz",
    "neutral_obj": "neutral.obj",
    "glb": "face.glb",
    "blendshapes": "blendshapes.json",
    "json": "fit.json",
}

#: the file whose presence marks a complete output folder.
COMPLETE_MARKER = OUTPUT_FILES["json"]


def write_png(path: PathLike, image: np.ndarray) -> Path:
    """Write an RGB ([H, W, 3]) or single-channel ([H, W]) uint8 PNG atomically; returns the path."""
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"PNG image must be uint8 [H, W] or [H, W, 3], got {image.dtype} {image.shape}")
    data = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", data)
    if not ok:
        raise OSError(f"cannot encode {path} as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return Path(path)


def load_original_image(result: FitResult) -> Optional[np.ndarray]:
    """The photo of ``result`` ([H, W, 3] uint8 RGB) read from ``targets.source``; None if unreadable."""
    source = result.targets.source if result.targets is not None else ""
    if not source or not Path(source).is_file():
        return None
    from fitter.errors import ImageReadError
    from fitter.targets.io import load_image

    try:
        return load_image(source).rgb
    except ImageReadError:
        return None


#: displacements of a morph target up to this length (metres) are stored as zero in face.glb: 1 µm
GLB_MIN_OFFSET_M = 1e-6


def write_face_glb(path: PathLike, rig: FaceRig, name: str = "face") -> Path:
    """``face.glb`` of ``rig``: neutral mesh and targets in metres, part colours, fitted weights."""
    m = rig.metres_per_unit
    return write_glb(path, rig.neutral * m, rig.triangles, colors=rig.colors, targets=rig.targets * m,
                     target_names=rig.target_names, weights=rig.weights, name=name,
                     min_offset=GLB_MIN_OFFSET_M, extras={"prdlfit": rig_summary(rig)})


def write_animation_outputs(result: FitResult, model: MorphableModel, paths: Dict[str, Path]) -> Dict[str, Path]:
    """``neutral.obj``, ``face.glb`` and (models with an ARKit mapping) ``blendshapes.json``."""
    written: Dict[str, Path] = {}
    rig = face_rig(result, model)
    comment = (f"prdlfit fit of {result.model_name}: fitted identity, zero expression; model space "
               f"(+X the person's left, +Y up, +Z towards the viewer), {rig.units}; vertex colours = parts")
    written["neutral_obj"] = write_obj(paths["neutral_obj"], rig.neutral, rig.triangles, rig.colors, comment)
    written["glb"] = write_face_glb(paths["glb"], rig, name=f"{result.model_name} fit")
    summary = blendshapes_summary(result, model)
    if summary is not None:
        written["blendshapes"] = write_blendshapes_json(paths["blendshapes"], summary)
    return written


def is_complete(out_dir: PathLike) -> bool:
    """True when ``out_dir`` holds a finished set of outputs (its ``fit.json`` exists)."""
    return (Path(out_dir) / COMPLETE_MARKER).is_file()


def discard_outputs(out_dir: PathLike) -> None:
    """Remove the output files (:data:`OUTPUT_FILES`) and leftover temporary files of ``out_dir``,
    and the folder itself when that empties it: what a failed :func:`write_fit_outputs` leaves
    (its ``fit.json`` is already gone, so the folder was incomplete anyway). Never raises."""
    out = Path(out_dir)
    if not out.is_dir():
        return
    for path in [out / name for name in OUTPUT_FILES.values()] + list(out.glob(".*.tmp*")):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
    try:
        out.rmdir()
    except OSError:
        pass  # not empty (the user's own files) or already gone


def write_fit_outputs(result: FitResult, model: MorphableModel, out_dir: PathLike,
                      original_image: Optional[np.ndarray] = None, overlay: bool = True,
                      target_config: Optional[object] = None) -> Dict[str, Path]:
    """Write every output of ``result`` into ``out_dir`` (created if needed).

    Args:
        result: a successful fit of ``model``.
        model: the model fitted (triangles and parts for the mesh and label maps).
        out_dir: the per-image folder.
        original_image: [H, W, 3] uint8 RGB photo for the overlay; None = read ``targets.source``.
        overlay: write ``overlay.png``.
        target_config: the ``TargetConfig`` the targets were built with (recorded in fit.json).
    Returns:
        output name (keys of :data:`OUTPUT_FILES`) -> path written.
    Raises:
        FitError: the result is a failed fit (``result.failure``).
        ValueError: the result does not belong to ``model``.
    """
    if getattr(result, "failure", None):
        raise FitError(f"not writing a failed fit: {result.failure}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / COMPLETE_MARKER
    if marker.exists():
        marker.unlink()
    paths = {key: out / name for key, name in OUTPUT_FILES.items()}
    written: Dict[str, Path] = {}

    mesh = fitted_mesh(result, model)
    comment = (f"prdlfit fit of {result.model_name}: camera space (x right, y down, z forward), "
               f"{mesh.units}; vertex colours = parts")
    written["mesh_obj"] = write_obj(paths["mesh_obj"], mesh.vertices, mesh.triangles, mesh.colors, comment)
    written["mesh_ply"] = write_ply(paths["mesh_ply"], mesh.vertices, mesh.triangles, mesh.colors, comment)
    written["npz"] = write_npz(paths["npz"], fit_arrays(result))
    written["landmarks2d"] = write_npy(paths["landmarks2d"], result.landmarks2d_original().astype(np.float32))
    written["landmarks3d"] = write_npy(paths["landmarks3d"], np.asarray(result.landmarks3d, dtype=np.float32))
    written["parts"] = write_png(paths["parts"], part_label_map(result, model))
    if overlay:
        image = original_image if original_image is not None else load_original_image(result)
        written["overlay"] = write_png(paths["overlay"], overlay_image(result, model, image))
    written["curves_csv"] = write_curves_csv(paths["curves_csv"], result.history)
    written["curves_png"] = write_png(paths["curves_png"], history_chart(result.history, title=Path(out).name))
    snaps = snapshots_of(result, model)
    if snaps is not None:
        written["snapshots"] = write_npz(paths["snapshots"], snaps.arrays())
    written.update(write_animation_outputs(result, model, paths))

    for key, path in paths.items():
        if key not in written and key != "json" and path.exists():
            path.unlink()
    summary = fit_summary(result, model, {k: p.name for k, p in written.items()}, target_config)
    fsync_dir(out)
    written["json"] = write_fit_json(marker, summary)
    fsync_dir(out)
    return written
