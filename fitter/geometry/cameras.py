"""Camera objects of a batch of fitting crops: one class per camera kind, no string switches.

A fitted face's pose is (R, t_x, t_y, d) where the last parameter ``d`` (``log_depth``, [B, 1])
means what the camera needs:

* :class:`PerspectiveCamera` — fixed focal ``f`` (pixels), ``d = log t_z``:
  ``t = (t_x, t_y, exp d)``, ``u = f x / z + c``.
* :class:`WeakPerspectiveCamera` — scaled orthographic, ``d = log s`` (pixels per model unit):
  ``t = (t_x, t_y, 0)``, ``u = s x + c``.

Both start from the closed-form weak-perspective scale ``s`` of the landmark Procrustes
(:meth:`log_depth_from_scale`: ``log(f / s)``, resp. ``log s``). The principal point is the crop
centre ``((W - 1) / 2, (H - 1) / 2)`` (pixel centres at integers). The paper's focal is
:data:`fitter.geometry.camera.FOCAL_224` at 224 px, scaled with the crop width.
"""
from __future__ import annotations

from typing import Dict, Tuple, Type, Union

import torch
from torch import Tensor

from fitter.geometry.camera import FOCAL_224, default_focal, project_perspective, project_weak


def crop_principal(size: Tuple[int, int], batch: int, device: torch.device) -> Tensor:
    """[B, 2] principal point (crop centre) of ``batch`` crops of ``size`` = (W, H) pixels."""
    W, H = size
    return torch.tensor([(W - 1) / 2.0, (H - 1) / 2.0], device=device).expand(batch, 2)


class PerspectiveCamera:
    """Pinhole camera with one focal length for the whole batch.

    Attributes:
        focal: pixels. principal: [B, 2] pixels.
    """

    kind = "perspective"

    def __init__(self, focal: float, principal: Tensor):
        self.focal = float(focal)
        self.principal = principal

    @classmethod
    def for_crop(cls, size: Tuple[int, int], batch: int, device: torch.device, focal_224: float = FOCAL_224):
        """The camera of ``batch`` crops of ``size`` = (W, H): focal ``focal_224 * W / 224``."""
        return cls(default_focal(size[0], focal_224), crop_principal(size, batch, device))

    def translation(self, trans_xy: Tensor, log_depth: Tensor) -> Tensor:
        """[B, 3] camera-space translation from (t_x, t_y) [B, 2] and log t_z [B, 1]."""
        return torch.cat([trans_xy, log_depth.exp()], -1)

    def project(self, points_cam: Tensor, log_depth: Tensor) -> Tensor:
        """[B, V, 2] pixels of camera-space points [B, V, 3] (``log_depth`` is unused here)."""
        return project_perspective(points_cam, self.focal, self.principal)

    def log_depth_from_scale(self, scale: Tensor) -> Tensor:
        """[B] log t_z that gives a weak-perspective ``scale`` [B] (px per model unit): log(f / s)."""
        return torch.log(torch.as_tensor(self.focal, dtype=scale.dtype) / scale)

    def focal_of(self, log_depth: Tensor) -> float:
        """The focal (pixels) recorded in a result for one face's ``log_depth`` [1]."""
        return float(self.focal)

    def select(self, index: Tensor) -> "PerspectiveCamera":
        """The camera of the faces ``index`` [b] (long) of the batch."""
        return PerspectiveCamera(self.focal, self.principal.index_select(0, index))


class WeakPerspectiveCamera:
    """Scaled orthographic camera; each face's scale is its ``exp(log_depth)``.

    Attributes:
        principal: [B, 2] pixels (image position of the camera-space origin).
    """

    kind = "weak"

    def __init__(self, principal: Tensor):
        self.principal = principal

    @classmethod
    def for_crop(cls, size: Tuple[int, int], batch: int, device: torch.device, focal_224: float = FOCAL_224):
        """The camera of ``batch`` crops of ``size`` = (W, H) (``focal_224`` is not used)."""
        return cls(crop_principal(size, batch, device))

    def translation(self, trans_xy: Tensor, log_depth: Tensor) -> Tensor:
        """[B, 3] translation (t_x, t_y, 0): depth does not exist for this camera."""
        return torch.cat([trans_xy, torch.zeros_like(log_depth)], -1)

    def project(self, points_cam: Tensor, log_depth: Tensor) -> Tensor:
        """[B, V, 2] pixels: ``exp(log_depth) * (x, y) + principal``."""
        return project_weak(points_cam, log_depth.exp().squeeze(-1), self.principal)

    def log_depth_from_scale(self, scale: Tensor) -> Tensor:
        """[B] log s."""
        return torch.log(scale)

    def focal_of(self, log_depth: Tensor) -> float:
        """The scale (pixels per model unit) that a result records as its ``focal``."""
        return float(log_depth.detach().exp())

    def select(self, index: Tensor) -> "WeakPerspectiveCamera":
        """The camera of the faces ``index`` [b] (long) of the batch."""
        return WeakPerspectiveCamera(self.principal.index_select(0, index))


FittingCamera = Union[PerspectiveCamera, WeakPerspectiveCamera]

#: camera kind (``FitConfig.camera``) -> class.
CAMERAS: Dict[str, Type[FittingCamera]] = {c.kind: c for c in (PerspectiveCamera, WeakPerspectiveCamera)}


def camera_for_crop(kind: str, size: Tuple[int, int], batch: int, device: torch.device,
                    focal_224: float = FOCAL_224) -> FittingCamera:
    """The fitting camera of ``kind`` for ``batch`` crops of ``size`` = (W, H) pixels."""
    try:
        cls = CAMERAS[kind]
    except KeyError:
        raise ValueError(f"unknown camera {kind!r}; known: {', '.join(sorted(CAMERAS))}") from None
    return cls.for_crop(size, batch, device, focal_224)
