"""The model's own limits on a given batch shape: what no attribution method can beat.

- plain forward: ``module(x)`` under ``no_grad`` (RISE and the attack can at best match it);
- forward+backward: logits of the target class summed, gradient w.r.t. the input (one
  gradient evaluation per image; IG with ``n_steps`` needs ``n_steps`` of them).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def forward_call(
    module: nn.Module, x: torch.Tensor, batch_size: int | None = None
) -> Callable[[], None]:
    """A closure running the plain batched forward of ``x`` ``[B, C, H, W]`` (chunked)."""
    step = batch_size or len(x)

    def run() -> None:
        with torch.no_grad():
            for i in range(0, len(x), step):
                module(x[i : i + step])

    return run


def forward_backward_call(
    module: nn.Module, x: torch.Tensor, targets: torch.Tensor, batch_size: int | None = None
) -> Callable[[], None]:
    """A closure computing d(logit_target)/d(input) for every row of ``x`` (chunked)."""
    step = batch_size or len(x)

    def run() -> None:
        for i in range(0, len(x), step):
            xi = x[i : i + step].detach().requires_grad_(True)
            out = module(xi)
            picked = out.gather(1, targets[i : i + step, None]).sum()
            torch.autograd.grad(picked, xi)

    return run
