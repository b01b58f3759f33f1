"""Rotation parametrizations: the continuous 6D form (for optimization) and Euler angles (for reading).

Conventions. Rotations act on column vectors, ``x' = R @ x``, in the camera frame (OpenCV: x right,
y down, z forward; see :mod:`fitter.geometry.camera`). Euler angles are ``(pitch, yaw, roll)`` in
radians with

    R = Rz(roll) @ Ry(yaw) @ Rx(pitch)        (pitch applied first, roll last)

    pitch: about the camera x axis. A face looking at the camera (nose along -z) tilts its nose
           towards +y (down in the image) for positive pitch.
    yaw:   about the camera y axis. Positive yaw turns the nose towards -x (image left, which is the
           person's own right for a frontal face).
    roll:  about the camera z (optical) axis. Positive roll turns +x towards +y, i.e. clockwise as
           seen in the image (y points down).

The 6D representation (Zhou et al., CVPR 2019, "On the Continuity of Rotation Representations in
Neural Networks") stores the first two *columns* of R, ``r6 = [R[:, 0], R[:, 1]]``; any 6-vector
whose halves are not parallel maps back to a rotation by Gram-Schmidt, with no singularity that
an optimizer can run into.
"""
from __future__ import annotations

import torch
from torch import Tensor

_EPS = 1e-8


def _check_last(x: Tensor, n: int, name: str) -> None:
    if x.shape[-1] != n:
        raise ValueError(f"{name} must have a last dimension of {n}, got shape {tuple(x.shape)}")


def _check_matrix(R: Tensor) -> None:
    if R.dim() < 2 or R.shape[-2:] != (3, 3):
        raise ValueError(f"rotation matrices must be [..., 3, 3], got shape {tuple(R.shape)}")


def rotation_6d_to_matrix(r6: Tensor) -> Tensor:
    """6D rotation -> rotation matrix by Gram-Schmidt.

    Args:
        r6: [..., 6] two 3-vectors (a1, a2), not parallel; their length does not matter.
    Returns:
        [..., 3, 3] rotation matrices with columns b1 = a1/|a1|, b2 = the part of a2 orthogonal
        to b1 (normalized), b3 = b1 × b2.
    """
    _check_last(r6, 6, "r6")
    a1, a2 = r6[..., :3], r6[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    a2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = a2 / a2.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def matrix_to_rotation_6d(R: Tensor) -> Tensor:
    """Rotation matrix -> 6D form (its first two columns).

    Args:
        R: [..., 3, 3] rotation matrices.
    Returns:
        [..., 6] ``[R[..., :, 0], R[..., :, 1]]``; ``rotation_6d_to_matrix`` inverts it exactly.
    """
    _check_matrix(R)
    return torch.cat((R[..., :, 0], R[..., :, 1]), dim=-1)


def euler_to_matrix(angles: Tensor) -> Tensor:
    """(pitch, yaw, roll) in radians -> ``Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (see module docstring).

    Args:
        angles: [..., 3] radians.
    Returns:
        [..., 3, 3] rotation matrices.
    """
    _check_last(angles, 3, "angles")
    cx, cy, cz = torch.cos(angles).unbind(-1)
    sx, sy, sz = torch.sin(angles).unbind(-1)
    # Product Rz @ Ry @ Rx written out.
    rows = (
        (cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx),
        (sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx),
        (-sy, cy * sx, cy * cx),
    )
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def matrix_to_euler(R: Tensor) -> Tensor:
    """Rotation matrix -> (pitch, yaw, roll) in radians, the inverse of :func:`euler_to_matrix`.

    yaw is returned in [-pi/2, pi/2], pitch and roll in (-pi, pi]. At gimbal lock (|yaw| = pi/2)
    roll is set to 0 and the whole in-plane angle is given to pitch.

    Args:
        R: [..., 3, 3] rotation matrices.
    Returns:
        [..., 3] radians.
    """
    _check_matrix(R)
    r00, r10, r20 = R[..., 0, 0], R[..., 1, 0], R[..., 2, 0]
    r21, r22 = R[..., 2, 1], R[..., 2, 2]
    cos_yaw = torch.sqrt(r00 * r00 + r10 * r10)
    yaw = torch.atan2(-r20, cos_yaw)
    locked = cos_yaw < 1e-6
    pitch = torch.atan2(r21, r22)
    roll = torch.atan2(r10, r00)
    # Gimbal lock (sin(yaw) = s = ±1): with roll = 0, R01 = s*sin(pitch) and R11 = cos(pitch).
    sign = torch.sign(-r20)
    pitch_locked = torch.atan2(sign * R[..., 0, 1], R[..., 1, 1])
    pitch = torch.where(locked, pitch_locked, pitch)
    roll = torch.where(locked, torch.zeros_like(roll), roll)
    return torch.stack((pitch, yaw, roll), dim=-1)
