"""The attack's scoring helpers: batched forwards, the score the search maximises, the goal.

``score`` is the target log-probability (log-softmax: same order as the probability, no
float saturation) in ``repair``/``targeted`` mode and minus the true-class log-probability
in ``untargeted`` mode; the goal is "predicts the target" resp. "predicts anything else".
The loop itself is :mod:`xaiq.xai.attack.tracks`.
"""

from __future__ import annotations

import torch
from torch import nn


def forward_batched(module: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Logits ``[B, classes]`` float32 of ``x [B, C, H, W]`` in forwards of ``batch_size``."""
    outs = [module(x[i : i + batch_size]).float() for i in range(0, x.shape[0], batch_size)]
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def stop_reached(pred: torch.Tensor, targets: torch.Tensor, untargeted: bool) -> torch.Tensor:
    """Bool ``[n]``: the attack's goal holds for predictions ``pred``."""
    return pred != targets if untargeted else pred == targets


def scores_from_logits(
    logits: torch.Tensor, targets: torch.Tensor, untargeted: bool
) -> torch.Tensor:
    """``[..., classes]`` logits and ``[...]`` targets -> the score the search maximises."""
    lp = logits.log_softmax(dim=-1).gather(-1, targets[..., None]).squeeze(-1)
    return -lp if untargeted else lp
