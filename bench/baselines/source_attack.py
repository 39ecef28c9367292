"""The source lab's random-search loop: one image, one candidate per forward pass.

``candidate = current + mask * N(0, sigma^2)``; keep it when the target-class
log-probability rises; stop as soon as the model predicts the target or after ``max_iters``.
"""

from __future__ import annotations

import torch
from torch import nn


def lowest_saliency_mask(saliency: torch.Tensor, frac: float = 0.4) -> torch.Tensor:
    """Boolean ``[H, W]``: the ``floor(frac*H*W)`` lowest-saliency pixels (ties: lower index)."""
    flat = saliency.flatten()
    budget = int(frac * flat.numel())
    order = torch.sort(flat, stable=True).indices[:budget]
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[order] = True
    return mask.view_as(saliency)


def source_attack_loop(
    module: nn.Module,
    x1: torch.Tensor,
    target: int,
    mask: torch.Tensor,
    *,
    sigma: float = 1.0,
    max_iters: int = 1000,
    seed: int = 0,
) -> tuple[int, bool]:
    """Run the loop on ``x1`` ``[1, C, H, W]``; returns (forward passes, success)."""
    gen = torch.Generator(device=x1.device).manual_seed(seed)
    m = mask.to(x1.device, x1.dtype)[None, None]
    current = x1.clone()
    with torch.no_grad():
        best = module(current).log_softmax(dim=1)[0, target]
        forwards = 1
        for _ in range(max_iters):
            noise = torch.randn(current.shape, generator=gen, device=x1.device) * sigma
            candidate = current + m * noise
            logp = module(candidate).log_softmax(dim=1)[0]
            forwards += 1
            if logp[target] > best:
                current, best = candidate, logp[target]
                if int(logp.argmax()) == target:
                    return forwards, True
    return forwards, False
