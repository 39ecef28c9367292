"""The lab's diagnosis, measured at the original image: does the goal class have a gradient?

The source lab found gradient explanations useless on a poorly calibrated model ("almost no
gradient, so small changes do not move the logit"). Per image this module measures the L2
norm of the input gradient of the goal class's logit and of its log-probability; the
model's confidence (its top softmax probability) comes from the originals' scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class GoalGradients:
    """``grad_norm_logit``, ``grad_norm_logprob`` ``[N]`` float32 on the module's device."""

    grad_norm_logit: torch.Tensor
    grad_norm_logprob: torch.Tensor


def goal_gradients(
    module: nn.Module, x: torch.Tensor, goal: torch.Tensor, batch_size: int
) -> GoalGradients:
    """L2 norms over ``[C, H, W]`` of the input gradients of ``logit[goal]`` and of
    ``log_softmax[goal]`` at ``x [N, C, H, W]`` (``goal [N]`` int64), in chunks of
    ``batch_size``. One forward and two backwards per chunk (not counted as attack passes:
    the originals' scores come from the attack's own gradient-free forward)."""
    g_logit, g_logprob = [], []
    for i in range(0, x.shape[0], batch_size):
        xb = x[i : i + batch_size].detach().clone().requires_grad_(True)
        tb = goal[i : i + batch_size, None]
        with torch.enable_grad():
            out = module(xb).float()
            (gl,) = torch.autograd.grad(out.gather(1, tb).sum(), xb, retain_graph=True)
            (glp,) = torch.autograd.grad(out.log_softmax(dim=1).gather(1, tb).sum(), xb)
        g_logit.append(gl.flatten(1).norm(dim=1))
        g_logprob.append(glp.flatten(1).norm(dim=1))
    if not g_logit:
        empty = torch.zeros(0, device=x.device)
        return GoalGradients(empty, empty)
    return GoalGradients(torch.cat(g_logit), torch.cat(g_logprob))
