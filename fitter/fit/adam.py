"""Adam (Kingma & Ba, 2015) for the fit's few small tensors, without the compiler stack.

``torch.optim.Adam`` imports ``torch._dynamo`` when it is built (1.4-2.4 s on a 2-core VM: a third
of a single-photo run). This is the same update, element for element, as torch's single-tensor
path with its defaults (no weight decay, no AMSGrad), so fits are unchanged:

    m ← lerp(m, g, 1 − β1)                    v ← β2 v + (1 − β2) g²
    p ← p − (lr / (1 − β1^k)) · m / (√v / √(1 − β2^k) + ε)

Parameter groups carry their own ``lr`` (the fit's pose group runs at ``lr * pose_lr_scale``);
the caller may change ``group["lr"]`` between steps (the cosine schedule of :mod:`fitter.fit.loop`).
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Optional

import torch
from torch import Tensor


class Adam:
    """``Adam(groups)`` with ``groups = [{"params": [tensors], "lr": float}, ...]``.

    Args:
        betas: (β1, β2). eps: ε added to the bias-corrected √v.
    """

    def __init__(self, groups: Iterable[Dict], betas=(0.9, 0.999), eps: float = 1e-8):
        self.param_groups: List[Dict] = [{"params": list(g["params"]), "lr": float(g["lr"])} for g in groups]
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.state: Dict[int, Dict[str, object]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Tensor]] = None) -> Optional[Tensor]:
        """One update of every parameter that has a gradient; ``closure`` (re)computes the loss first."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        b1, b2, eps = self.beta1, self.beta2, self.eps
        for group in self.param_groups:
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                st = self.state.get(id(p))
                if st is None:
                    st = self.state[id(p)] = {"step": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)}
                st["step"] += 1
                k = float(st["step"])
                m, v = st["m"], st["v"]
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                step_size = lr / (1 - b1 ** k)
                denom = (v.sqrt() / ((1 - b2 ** k) ** 0.5)).add_(eps)
                p.addcdiv_(m, denom, value=-step_size)
        return loss
