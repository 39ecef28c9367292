"""The model's own limits on a given batch shape: what no attribution method can beat.

- plain forward: ``module(x)`` under ``no_grad`` (RISE and the attack can at best match it);
- forward+backward: logits of the target class summed, gradient w.r.t. the input (one
  gradient evaluation per image; IG with ``n_steps`` needs ``n_steps`` of them);
- recorded forwards: the plain forward of the very batches a no-gradient method (RISE, the
  attack) fed the model, replayed.
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


class RecordedForwards:
    """The batches a library call pushes through ``module``, recorded in one untimed call, to
    replay as the limit: the model's own forward of exactly the data the method feeds it.

    The model's speed depends on its input values, not only on the shapes (on digits-cnn a
    forward of RISE-masked digits is ~8% slower than of the clean digits, and the attack's
    candidates differ again): a limit on other data would charge or credit that to the method.
    At most ``cap_bytes`` of batches are kept; a longer call is replayed by cycling them.
    """

    def __init__(self, module: nn.Module, call: Callable[[], object], cap_bytes: int) -> None:
        self.module = module
        self.batches: list[torch.Tensor] = []
        self.sizes: list[int] = []  # rows of every forward, kept or not
        kept = 0

        def hook(_mod: nn.Module, args: tuple) -> None:
            nonlocal kept
            x = args[0]
            self.sizes.append(int(x.shape[0]))
            nbytes = x.numel() * x.element_size()
            if not self.batches or kept + nbytes <= cap_bytes:
                self.batches.append(x.detach().clone())
                kept += nbytes

        handle = module.register_forward_pre_hook(hook)
        try:
            call()
        finally:
            handle.remove()

    @property
    def rows(self) -> int:
        """Rows the recorded call fed the model."""
        return sum(self.sizes)

    @property
    def replay_rows(self) -> int:
        """Rows one :meth:`replay` pushes through (``rows`` unless the cap made it cycle)."""
        return sum(len(self.batches[i % len(self.batches)]) for i in range(len(self.sizes)))

    def replay(self) -> None:
        """One plain forward per recorded forward, under ``no_grad``."""
        with torch.no_grad():
            for i in range(len(self.sizes)):
                self.module(self.batches[i % len(self.batches)])
