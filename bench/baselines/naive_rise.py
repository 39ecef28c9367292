"""RISE the way its reference code does it: masks made one at a time on the CPU with
scikit-image's ``resize``, then one image at a time: the whole ``masks * image`` stack is
materialised, pushed through the model in batches, and every class is accumulated.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def generate_masks_naive(
    n_masks: int, s: int, p1: float, size: tuple[int, int], seed: int = 0
) -> np.ndarray:
    """``[N, H, W]`` float32 masks: a Python loop of skimage bilinear resizes + random crops."""
    from skimage.transform import resize

    rng = np.random.default_rng(seed)
    h, w = size
    cell = (int(np.ceil(h / s)), int(np.ceil(w / s)))
    up = ((s + 1) * cell[0], (s + 1) * cell[1])
    grid = (rng.random((n_masks, s, s)) < p1).astype(np.float32)
    masks = np.empty((n_masks, h, w), dtype=np.float32)
    for i in range(n_masks):
        dy, dx = int(rng.integers(0, cell[0])), int(rng.integers(0, cell[1]))
        big = resize(grid[i], up, order=1, mode="reflect", anti_aliasing=False)
        masks[i] = big[dy : dy + h, dx : dx + w]
    return masks


def rise_naive(
    module: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    masks: np.ndarray,
    p1: float = 0.5,
    batch_size: int = 100,
) -> torch.Tensor:
    """Saliency ``[M, H, W]`` for ``images`` ``[M, C, H, W]``, one image at a time."""
    device = images.device
    m = torch.from_numpy(masks).to(device)[:, None]  # [N, 1, H, W]
    n, _, h, w = m.shape
    out = []
    with torch.no_grad():
        for x, t in zip(images, targets, strict=True):
            stack = m * x[None]
            probs = torch.cat(
                [module(stack[i : i + batch_size]).softmax(dim=1) for i in range(0, n, batch_size)]
            )
            sal = (probs.T @ m.view(n, h * w)).view(-1, h, w) / n / p1
            out.append(sal[int(t)])
    return torch.stack(out)
