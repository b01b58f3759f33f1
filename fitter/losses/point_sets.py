"""Ragged per-part point sets <-> padded tensors with a validity mask (the losses' input form)."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor


def pad_point_sets(
    sets: Sequence[Tensor],
    length: Optional[int] = None,
    device: Optional[torch.device] = None,
    dtype: Optional[torch.dtype] = None,
) -> Tuple[Tensor, Tensor]:
    """Stack point sets of different sizes into one padded tensor.

    Args:
        sets: P tensors [N_p, D] (N_p may be 0).
        length: padded length N (>= every N_p); None = the largest N_p.
        device, dtype: of the output; default those of the first set.
    Returns:
        points [P, N, D] (padding = 0) and valid [P, N] bool.
    """
    if len(sets) == 0:
        raise ValueError("pad_point_sets needs at least one set")
    D = sets[0].shape[-1]
    for s in sets:
        if s.dim() != 2 or s.shape[-1] != D:
            raise ValueError(f"every set must be [N, {D}], got {tuple(s.shape)}")
    n_max = max(int(s.shape[0]) for s in sets)
    N = n_max if length is None else int(length)
    if N < n_max:
        raise ValueError(f"length {N} is shorter than the largest set ({n_max})")
    device = device if device is not None else sets[0].device
    dtype = dtype or sets[0].dtype
    points = torch.zeros(len(sets), N, D, device=device, dtype=dtype)
    valid = torch.zeros(len(sets), N, device=device, dtype=torch.bool)
    for p, s in enumerate(sets):
        n = s.shape[0]
        points[p, :n] = s.to(device=device, dtype=dtype)
        valid[p, :n] = True
    return points, valid
