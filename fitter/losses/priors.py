"""Priors on the model coefficients (the paper's λ_reg term)."""
from __future__ import annotations

from typing import Optional

from torch import Tensor


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


def l1_prior(coeffs: Tensor, std: Tensor, weights: Optional[Tensor] = None) -> Tensor:
    """Sparsity (Laplace) prior: Σ_k |c_k| / std_k.

    Unlike the Gaussian prior, whose pull vanishes near 0, its pull has the same size at any
    magnitude, so a coefficient the data does not ask for goes to exactly 0 (with the [0, 1]
    bounds of blendshape weights, the optimizer's projection lands it there): a neutral face keeps
    a neutral expression instead of a spread of small, compensating weights.

    Args:
        coeffs: [B, K] (or [B, k] with k <= K). std: [K] positive scales.
        weights: [K] non-negative per-coefficient factors (None = all 1): Σ_k w_k |c_k| / std_k.
    Returns:
        [B].
    """
    z = _scaled(coeffs, std).abs()
    if weights is not None:
        z = z * weights[: z.shape[1]].to(device=z.device, dtype=z.dtype)
    return z.sum(dim=1)
