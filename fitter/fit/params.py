"""The optimized parameters of a batch of faces and how they map to the model and the pose.

Coefficients are optimized in units of their prior standard deviation (``coeff = z * std``),
rotation as the continuous 6D representation, translation as (t_x, t_y) in model units plus the
camera's depth parameter ``log_depth`` (see :mod:`fitter.geometry.cameras`). Expression
coefficients are kept inside the model's bounds by projection after each step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
import torch
from torch import Tensor

from fitter.geometry.camera import MODEL_TO_CAMERA_DIAG
from fitter.geometry.cameras import FittingCamera
from fitter.geometry.procrustes import weak_procrustes
from fitter.geometry.rotation import matrix_to_rotation_6d, rotation_6d_to_matrix
from morphable_models.model import MorphableModel

#: the iBUG-68 points used for the closed-form rigid initialisation (no jaw contour).
INNER_LANDMARKS = list(range(17, 68))


@dataclass
class FaceParams:
    """Optimized tensors of a batch (all [B, ...], requires_grad).

    z_id [B, K_id], z_exp [B, K_exp]: coefficients in prior-std units; rot6d [B, 6]; trans_xy
    [B, 2] model units; log_depth [B, 1] (the camera's depth parameter).
    """

    z_id: Tensor
    z_exp: Tensor
    rot6d: Tensor
    trans_xy: Tensor
    log_depth: Tensor

    def tensors(self) -> List[Tensor]:
        """Every optimized tensor (the main stage)."""
        return [self.z_id, self.z_exp, self.rot6d, self.trans_xy, self.log_depth]

    def pose_tensors(self) -> List[Tensor]:
        """Rotation and translation only (the rigid stage; a smaller learning rate in Adam)."""
        return [self.rot6d, self.trans_xy, self.log_depth]

    def select(self, index: Tensor) -> "FaceParams":
        """The faces ``index`` [b] (long) as views of these tensors: a loss on them sends its
        gradient back to the selected rows of the full tensors (the others get 0)."""
        return FaceParams(*(t.index_select(0, index) for t in self.tensors()))


class ParamSpace:
    """The map between :class:`FaceParams` and model coefficients / pose for one model.

    Args:
        model: the morphable model (on the fitting device).
        num_id, num_exp: how many leading components are fitted (None = all; capped at the model's).
    """

    def __init__(self, model: MorphableModel, num_id=None, num_exp=None):
        self.model = model
        self.device = model.mean.device
        self.num_id = min(num_id if num_id is not None else model.num_id, model.num_id)
        self.num_exp = min(num_exp if num_exp is not None else model.num_exp, model.num_exp)
        inner = model.mean[model.landmarks68[INNER_LANDMARKS]]
        self._inner_flipped = (inner * torch.tensor(MODEL_TO_CAMERA_DIAG, device=self.device)).cpu().double()

    # ------------------------------------------------------------------ maps
    def coeffs(self, params: FaceParams) -> Tuple[Tensor, Tensor]:
        """(id [B, K_id], exp [B, K_exp]) model coefficients."""
        m = self.model
        return params.z_id * m.id_std[: self.num_id], params.z_exp * m.exp_std[: self.num_exp]

    def pose(self, params: FaceParams, camera: FittingCamera) -> Tuple[Tensor, Tensor]:
        """(R [B, 3, 3], t [B, 3]) camera-frame rotation and translation (model units)."""
        return rotation_6d_to_matrix(params.rot6d), camera.translation(params.trans_xy, params.log_depth)

    def project_bounds(self, params: FaceParams) -> None:
        """Clamp the expression coefficients into the model's [lower, upper] bounds, in place."""
        m, k = self.model, self.num_exp
        std = m.exp_std[:k]
        lo = m.exp_lower[:k] / std
        hi = m.exp_upper[:k] / std
        params.z_exp.data = torch.maximum(torch.minimum(params.z_exp.data, hi), lo)

    # ------------------------------------------------------------------ starts
    def initial(self, landmarks: Tensor, landmark_valid: Tensor, camera: FittingCamera) -> FaceParams:
        """Mean shape, neutral expression and the closed-form rigid pose of each face.

        Args:
            landmarks: [B, 68, 2] target landmarks (crop pixels); landmark_valid: [B, 68] bool.
        """
        B = landmarks.shape[0]
        rot = torch.zeros(B, 3, 3, dtype=torch.float64)
        trans = torch.zeros(B, 3, dtype=torch.float64)
        for b in range(B):
            x = landmarks[b, INNER_LANDMARKS].detach().cpu().double() - camera.principal[b].cpu().double()
            ok = landmark_valid[b, INNER_LANDMARKS].cpu()
            rot[b], trans[b] = weak_procrustes(self._inner_flipped[ok], x[ok])
        depth = camera.log_depth_from_scale(trans[:, 2])  # trans[:, 2] is the scale, px per model unit

        def leaf(x: Tensor) -> Tensor:
            return x.to(device=self.device, dtype=torch.float32).clone().requires_grad_(True)

        return FaceParams(
            z_id=leaf(torch.zeros(B, self.num_id)),
            z_exp=leaf(torch.zeros(B, self.num_exp)),
            rot6d=leaf(matrix_to_rotation_6d(rot)),
            trans_xy=leaf(trans[:, :2]),
            log_depth=leaf(depth.unsqueeze(-1)),
        )

    def at_values(self, id_coeffs: np.ndarray, exp_coeffs: np.ndarray, rotation: np.ndarray,
                  translation: np.ndarray) -> FaceParams:
        """One face's parameters at given values (as a result stores them; perspective camera).

        Args: id_coeffs [K_id], exp_coeffs [K_exp], rotation [3, 3], translation [3] model units.
        """
        m = self.model
        f32 = dict(device=self.device, dtype=torch.float32)
        t = torch.as_tensor(np.asarray(translation), **f32).view(1, 3)
        return FaceParams(
            z_id=torch.as_tensor(np.asarray(id_coeffs)[: self.num_id], **f32)[None] / m.id_std[: self.num_id],
            z_exp=torch.as_tensor(np.asarray(exp_coeffs)[: self.num_exp], **f32)[None] / m.exp_std[: self.num_exp],
            rot6d=matrix_to_rotation_6d(torch.as_tensor(np.asarray(rotation), **f32)[None]),
            trans_xy=t[:, :2],
            log_depth=t[:, 2:].log(),
        )
