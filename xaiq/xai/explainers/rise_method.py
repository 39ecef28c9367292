"""The ``rise`` explainer: RISE saliency (:mod:`xaiq.xai.rise`) through the registry.

Masks depend only on the job ``seed`` (shared by every image, which is what makes batching
many images per forward possible), so a sample's map does not depend on its batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from xaiq.xai.explainers.base import Param, register
from xaiq.xai.rise import rise_saliency


def _positive_int(v: int) -> bool:
    return v >= 1


@register(
    "rise",
    {
        "n_masks": Param(4000, int, _positive_int, ">= 1", "number of random masks N"),
        "s": Param(7, int, _positive_int, ">= 1", "grid cells per side"),
        "p1": Param(0.5, float, lambda v: 0.0 < v < 1.0, "in (0, 1)", "cell keep probability"),
        "batch_size": Param(
            None, int, _positive_int, ">= 1", "masked images per forward (default: automatic)"
        ),
    },
    stochastic=True,
)
def rise(
    module: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    seed: int = 0,
    sample_ids: Sequence[int] | None = None,
    n_masks: int = 4000,
    s: int = 7,
    p1: float = 0.5,
    batch_size: int | None = None,
) -> torch.Tensor:
    """RISE: softmax-weighted average of random masks ``[N, H, W]`` (Petsiuk et al. 2018)."""
    del sample_ids  # masks are shared by all samples and depend on the seed only
    return rise_saliency(
        module, images, targets, n_masks=n_masks, s=s, p1=p1, seed=seed, batch_size=batch_size
    )
