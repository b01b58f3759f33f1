"""Model space -> camera space -> image pixels.

Frames:
    model space  : +X the person's left, +Y up, +Z towards the viewer (see morphable_models.model).
    camera space : OpenCV, x right, y down, z forward (into the scene), model units.
    image        : (x, y) pixels of the fitting crop, x right, y down, pixel centres at integers.

The model is first flipped into the camera's axes by the fixed ``F = diag(1, -1, -1)`` and then
posed, ``X_cam = R @ (F @ X) + t``. With ``R = I`` a frontal face looks straight into the camera
and ``t_z > 0`` is its distance from the camera centre.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from fitter.geometry.conventions import FOCAL_224, MODEL_TO_CAMERA_DIAG  # noqa: F401  (re-exported)


def model_to_camera_flip(device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None) -> Tensor:
    """The fixed model -> camera axis flip ``F = diag(1, -1, -1)`` as a [3, 3] tensor."""
    return torch.diag(torch.tensor(MODEL_TO_CAMERA_DIAG, device=device, dtype=dtype or torch.float32))


#: F = diag(1, -1, -1) as a CPU float32 [3, 3] tensor (use ``model_to_camera_flip`` for other devices).
MODEL_TO_CAMERA: Tensor = model_to_camera_flip()


def model_to_camera(points: Tensor, R: Tensor, t: Tensor) -> Tensor:
    """Pose model-space points into camera space: ``X_cam = R @ (F @ X) + t``.

    Args:
        points: [B, V, 3] model space, model units.
        R: [B, 3, 3] rotation (camera frame).
        t: [B, 3] translation, camera space, model units.
    Returns:
        [B, V, 3] camera space, model units.
    """
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be [B, V, 3], got {tuple(points.shape)}")
    B = points.shape[0]
    if R.shape != (B, 3, 3):
        raise ValueError(f"R must be [{B}, 3, 3], got {tuple(R.shape)}")
    if t.shape != (B, 3):
        raise ValueError(f"t must be [{B}, 3], got {tuple(t.shape)}")
    flip = points.new_tensor(MODEL_TO_CAMERA_DIAG)
    return torch.einsum("bij,bvj->bvi", R, points * flip) + t.unsqueeze(1)


def _batch_size(points_cam: Tensor) -> int:
    """B of [B, V, 3] camera-space points; ValueError for any other shape."""
    if points_cam.dim() != 3 or points_cam.shape[-1] != 3:
        raise ValueError(f"points_cam must be [B, V, 3], got {tuple(points_cam.shape)}")
    return points_cam.shape[0]


def _per_batch(value: Union[Tensor, float], B: int, like: Tensor, name: str) -> Tensor:
    """A scalar or [B] tensor -> [B, 1, 1] on like's device/dtype."""
    v = torch.as_tensor(value, device=like.device, dtype=like.dtype)
    if v.dim() == 0:
        v = v.expand(B)
    if v.shape != (B,):
        raise ValueError(f"{name} must be a float or [{B}], got shape {tuple(v.shape)}")
    return v.view(B, 1, 1)


def _principal(principal: Tensor, B: int, like: Tensor) -> Tensor:
    c = torch.as_tensor(principal, device=like.device, dtype=like.dtype)
    if c.dim() == 1:
        c = c.expand(B, 2)
    if c.shape != (B, 2):
        raise ValueError(f"principal must be [{B}, 2] or [2], got shape {tuple(c.shape)}")
    return c.unsqueeze(1)


def project_perspective(
    points_cam: Tensor, focal: Union[Tensor, float], principal: Tensor, z_min: float = 1e-4
) -> Tensor:
    """Pinhole projection ``u = f x / z + cx``, ``v = f y / z + cy``.

    Args:
        points_cam: [B, V, 3] camera space (z forward).
        focal: float or [B], pixels.
        principal: [B, 2] (or [2]) principal point (cx, cy), pixels.
        z_min: depths are clamped to at least this (model units), so points behind the camera
            give finite (meaningless) pixels instead of inf/NaN.
    Returns:
        [B, V, 2] pixels (x, y).
    """
    B = _batch_size(points_cam)
    f = _per_batch(focal, B, points_cam, "focal")
    z = points_cam[..., 2:3].clamp_min(z_min)
    return f * points_cam[..., :2] / z + _principal(principal, B, points_cam)


def project_weak(points_cam: Tensor, scale: Union[Tensor, float], principal: Tensor) -> Tensor:
    """Weak-perspective (scaled orthographic) projection ``u = s x + cx``, ``v = s y + cy``.

    Args:
        points_cam: [B, V, 3] camera space; z is ignored.
        scale: float or [B], pixels per model unit.
        principal: [B, 2] (or [2]) image position of the camera-space origin, pixels.
    Returns:
        [B, V, 2] pixels (x, y).
    """
    B = _batch_size(points_cam)
    s = _per_batch(scale, B, points_cam, "scale")
    return s * points_cam[..., :2] + _principal(principal, B, points_cam)


def default_focal(image_size: int, focal_224: float = FOCAL_224) -> float:
    """Focal length in pixels for a crop ``image_size`` px wide: ``focal_224`` at 224 px, scaled
    linearly (the paper's fixed camera: 1015 px at 224 px)."""
    if image_size <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}")
    return focal_224 * float(image_size) / 224.0
