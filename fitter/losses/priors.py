"""Priors on the model coefficients (the paper's λ_reg term)."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor

#: head yaw (degrees) where :func:`profile_factor` starts to rise and where it reaches 1 + gain.
PROFILE_YAW_DEG: Tuple[float, float] = (30.0, 60.0)


def _scaled(coeffs: Tensor, std: Tensor) -> Tensor:
    """[B, k] coefficients over their scales (the first k of ``std`` [K]); shapes checked."""
    if coeffs.dim() != 2:
        raise ValueError(f"coeffs must be [B, K], got {tuple(coeffs.shape)}")
    k = coeffs.shape[1]
    if std.dim() != 1 or std.shape[0] < k:
        raise ValueError(f"std must be [K >= {k}], got {tuple(std.shape)}")
    return coeffs / std[:k].to(device=coeffs.device, dtype=coeffs.dtype)


def gaussian_prior(coeffs: Tensor, std: Tensor) -> Tensor:
    """Negative log-likelihood (up to constants, ×2) of independent N(0, std²) coefficients.

    Args:
        coeffs: [B, K] coefficients (or [B, k] with k <= K: the first k of ``std`` are used).
        std: [K] positive standard deviations.
    Returns:
        [B] Σ_k (c_k / std_k)².
    """
    return _scaled(coeffs, std).square().sum(dim=1)


def l2_prior(coeffs: Tensor) -> Tensor:
    """Plain ridge penalty.

    Args:
        coeffs: [B, K].
    Returns:
        [B] Σ_k c_k².
    """
    if coeffs.dim() != 2:
        raise ValueError(f"coeffs must be [B, K], got {tuple(coeffs.shape)}")
    return coeffs.square().sum(dim=1)


def l1_prior(coeffs: Tensor, std: Tensor, weights: Optional[Tensor] = None,
             gamma: Optional[float] = None) -> Tensor:
    """Sparsity prior: Σ_k w_k ρ(|c_k| / std_k), ρ the Laplace (L1) penalty or its concave MCP form.

    Unlike the Gaussian prior, whose pull vanishes near 0, the L1 pull has the same size at any
    magnitude, so a coefficient the data does not ask for goes to exactly 0 (with the [0, 1]
    bounds of blendshape weights, the optimizer's projection lands it there): a neutral face keeps
    a neutral expression instead of a spread of small, compensating weights.

    With ``gamma`` (γ > 0) the penalty is the minimax concave penalty (MCP, Zhang 2010):

        ρ(z) = z − z² / (2γ)   for z < γ,        ρ(z) = γ / 2   for z ≥ γ,

    the same pull as L1 at 0 (slope 1), fading linearly to none at z = γ. Small weights are still
    driven to 0, but a strong expression the data asks for (a closed eye at 0.9) is hardly shrunk,
    and one large weight costs less than two medium ones sharing the same motion (L1 is
    indifferent between them): the prior prefers the single shape that explains the image.

    Args:
        coeffs: [B, K] (or [B, k] with k <= K). std: [K] positive scales.
        weights: [K] non-negative per-coefficient factors (None = all 1).
        gamma: MCP's γ in units of std (None = plain L1).
    Returns:
        [B].
    """
    z = _scaled(coeffs, std).abs()
    if gamma is not None:
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}")
        z = torch.where(z < gamma, z - z.square() / (2.0 * gamma), z.new_tensor(0.5 * gamma))
    if weights is not None:
        z = z * weights[: z.shape[1]].to(device=z.device, dtype=z.dtype)
    return z.sum(dim=1)


def profile_ramp(yaw: Tensor, yaw_deg: Tuple[float, float] = PROFILE_YAW_DEG) -> Tensor:
    """``r²`` with ``r = clamp((|yaw| − y₀) / (y₁ − y₀), 0, 1)``, (y₀, y₁) = ``yaw_deg``: 0 up to y₀,
    1 from y₁ on; [B] yaw in radians (any sign) -> [B], no gradient. The one ramp from frontal to
    profile that :func:`profile_factor` and the jaw's fading weight
    (:func:`fitter.losses.fade_jaw_weights`) follow."""
    if yaw.dim() != 1:
        raise ValueError(f"yaw must be [B], got {tuple(yaw.shape)}")
    y0, y1 = (math.radians(float(d)) for d in yaw_deg)
    if not y1 > y0:
        raise ValueError(f"yaw_deg must rise, got {tuple(yaw_deg)}")
    return ((yaw.detach().abs() - y0) / (y1 - y0)).clamp(0.0, 1.0).square()


def profile_factor(yaw: Tensor, gain: float, yaw_deg: Tuple[float, float] = PROFILE_YAW_DEG) -> Tensor:
    """Per-face factor of a prior that grows as the head turns towards profile.

    ``1 + gain · r²`` with ``r = clamp((|yaw| − y₀) / (y₁ − y₀), 0, 1)``, (y₀, y₁) = ``yaw_deg``:
    1 up to y₀, 1 + gain from y₁ on. A 2D detector's landmarks grow less accurate as the face
    turns (the far half is foreshortened and partly hidden, the near contour is the silhouette);
    scaling a prior by this factor is the same as scaling the data terms by its inverse, i.e. a
    detector noise variance that grows with yaw, so a profile fit leans on the model's statistics
    where the photo says less.

    Args:
        yaw: [B] head yaw, radians (any sign). gain: ≥ 0 (0 = factor 1 everywhere).
        yaw_deg: (y₀, y₁) degrees, y₀ < y₁.
    Returns:
        [B] factors ≥ 1, same dtype and device as ``yaw`` (no gradient).
    """
    return 1.0 + float(gain) * profile_ramp(yaw, yaw_deg)
