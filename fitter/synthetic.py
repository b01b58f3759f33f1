"""Synthetic fitting cases: the model itself, posed and projected, gives exact targets.

Used by the tests and by ``scripts/bench_synthetic.py`` (the paper's Fig. 8/9 comparison in numbers):
ground-truth part masks are rasterized from the annotated parts, ground-truth landmarks are the
projected (contour-marched) model landmarks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from fitter import losses as L
from fitter.geometry.camera import FOCAL_224, default_focal, model_to_camera, project_perspective
from fitter.geometry.cameras import crop_principal
from fitter.geometry.rotation import euler_to_matrix
from fitter.metrics import render_part_labels
from fitter.targets.types import CropTransform, Targets
from morphable_models.model import MorphableModel

#: expression presets by ARKit name (ICT-FaceKit); names a model lacks are skipped.
EXPRESSIONS: Dict[str, Dict[str, float]] = {
    "neutral": {},
    "eyes_closed": {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0},
    "mouth_open": {"jawOpen": 1.0, "mouthLowerDown_L": 0.5, "mouthLowerDown_R": 0.5},
    "frown": {"browDown_L": 1.0, "browDown_R": 1.0, "mouthFrown_L": 1.0, "mouthFrown_R": 1.0, "noseSneer_L": 0.5,
              "noseSneer_R": 0.5},
    "asymmetric": {"eyeBlink_L": 1.0, "mouthSmile_R": 1.0, "browOuterUp_R": 1.0, "jawLeft": 0.5},
    "smile_open": {"mouthSmile_L": 1.0, "mouthSmile_R": 1.0, "jawOpen": 0.5, "cheekSquint_L": 0.5,
                   "cheekSquint_R": 0.5},
}

#: the extreme presets the benchmarks cycle through (every one appears N/5 times in N cases)
EXTREME_PRESETS = ["eyes_closed", "mouth_open", "frown", "asymmetric", "smile_open"]


@dataclass
class SyntheticCase:
    """One rendered case. Coordinates in pixels of a ``size``×``size`` image."""

    name: str
    id_coeffs: np.ndarray
    exp_coeffs: np.ndarray
    euler_deg: np.ndarray
    labels: np.ndarray  # [H, W] uint8 ground-truth part labels
    landmarks: np.ndarray  # [68, 2]
    vertices_model: np.ndarray  # [V, 3]
    targets: Targets
    rotation: np.ndarray  # [3, 3] model -> camera rotation (before the axis flip)
    translation: np.ndarray  # [3] camera translation, model units
    focal: float  # pixels; principal point at the image centre


def expression_vector(model: MorphableModel, preset: str, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """[K_exp] coefficients of a preset; for models without ARKit names, a random draw within bounds."""
    exp = np.zeros(model.num_exp, np.float32)
    spec = EXPRESSIONS[preset]
    known = [n for n in spec if n in model.exp_names]
    if spec and not known:
        rng = rng or np.random.default_rng(0)
        std = model.exp_std.cpu().numpy()
        lo, hi = model.exp_lower.cpu().numpy(), model.exp_upper.cpu().numpy()
        return np.clip(rng.normal(0, 1.5, model.num_exp) * std, lo, hi).astype(np.float32)
    for n in known:
        exp[model.exp_index(n)] = spec[n]
    return exp


def render_case(
    model: MorphableModel,
    id_coeffs: np.ndarray,
    exp_coeffs: np.ndarray,
    euler_deg: Tuple[float, float, float],
    size: int = 224,
    focal_224: float = FOCAL_224,
    face_fraction: float = 0.5,
    name: str = "case",
) -> SyntheticCase:
    """Pose the face at the crop centre (its landmark box spanning ``face_fraction`` of the crop),
    project with the fitter's perspective camera, and rasterize the ground truth."""
    from fitter.targets.preprocess import targets_from_label_map

    dev = model.device
    idc = torch.as_tensor(id_coeffs, dtype=torch.float32, device=dev)[None]
    exc = torch.as_tensor(exp_coeffs, dtype=torch.float32, device=dev)[None]
    verts = model.vertices(idc, exc)
    R = euler_to_matrix(torch.deg2rad(torch.tensor(euler_deg, dtype=torch.float32, device=dev)))[None]
    lmk = model.mean[model.landmarks68]
    width = float((lmk[:, 0].max() - lmk[:, 0].min()).cpu())
    focal = default_focal(size, focal_224)
    tz = focal * width / (face_fraction * size)
    centre = model_to_camera(lmk.mean(0)[None, None], R, torch.zeros(1, 3, device=dev))[0, 0]
    t = torch.stack([-centre[0], -centre[1], torch.tensor(tz, device=dev)])[None]
    cam = model_to_camera(verts, R, t)
    principal = crop_principal((size, size), 1, dev)
    img = project_perspective(cam, focal, principal)
    labels = render_part_labels(model, img, cam[..., 2], (size, size))[0]
    idx = L.march_contour_landmarks(img, model.contour_candidates, model.landmarks68)[0]
    landmarks = img[0, idx].cpu().numpy().astype(np.float32)
    targets = targets_from_label_map(
        labels, landmarks, np.ones(68, bool), CropTransform.identity(size, size), image=None
    )
    targets.source = name
    return SyntheticCase(
        name=name,
        id_coeffs=np.asarray(id_coeffs, np.float32),
        exp_coeffs=np.asarray(exp_coeffs, np.float32),
        euler_deg=np.asarray(euler_deg, np.float32),
        labels=labels,
        landmarks=landmarks,
        vertices_model=verts[0].cpu().numpy(),
        targets=targets,
        rotation=R[0].cpu().numpy(),
        translation=t[0].cpu().numpy(),
        focal=float(focal),
    )


def random_case(
    model: MorphableModel,
    seed: int,
    preset: Optional[str] = None,
    max_yaw: float = 60.0,
    size: int = 224,
    id_scale: float = 1.0,
) -> SyntheticCase:
    """A reproducible random case: identity ~ N(0, id_scale² std²), an expression preset (random if
    None), yaw uniform in ±max_yaw, pitch in ±15°, roll in ±10°."""
    rng = np.random.default_rng(seed)
    presets = list(EXPRESSIONS)
    preset = preset or presets[int(rng.integers(len(presets)))]
    std = model.id_std.cpu().numpy()
    id_c = (rng.normal(0, 1, model.num_id) * std * id_scale).astype(np.float32)
    exp_c = expression_vector(model, preset, rng)
    euler = (float(rng.uniform(-15, 15)), float(rng.uniform(-max_yaw, max_yaw)), float(rng.uniform(-10, 10)))
    return render_case(model, id_c, exp_c, euler, size=size, name=f"{preset}-{seed}")


def mean_face_error(model: MorphableModel, case: SyntheticCase, face_idx: np.ndarray) -> float:
    """3D error (mm, after similarity alignment) of the model's mean face on ``case``'s face
    vertices ``face_idx``: the error of every fit's starting shape."""
    from fitter.metrics import aligned_vertex_error

    mean = model.mean[: model.num_mesh_vertices].cpu().numpy()
    return aligned_vertex_error(mean[face_idx], case.vertices_model[face_idx], model.mm_per_unit)
