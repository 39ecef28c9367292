"""The source document's one-image pipeline, written the simple way it was written there.

One image at a time: Captum's IntegratedGradients / Saliency on ``[1, C, H, W]``; for every
comparison of two maps, SLIC is run again on the image and each superpixel's mean is taken in
a Python loop over the segments; the four source metrics (feature disagreement, sign
disagreement, Euclidean, Euclidean on absolute values) are computed with plain Python lists.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def captum_one_image(
    method: str, module: nn.Module, x1: torch.Tensor, target: int, n_steps: int = 50
) -> np.ndarray:
    """Map ``[H, W]`` (channels summed) for one image ``x1`` ``[1, C, H, W]`` via Captum."""
    from captum.attr import IntegratedGradients, Saliency

    if method == "integrated_gradients":
        attr = IntegratedGradients(module).attribute(
            x1, baselines=torch.zeros_like(x1), target=target, n_steps=n_steps
        )
    elif method == "saliency":
        attr = Saliency(module).attribute(x1, target=target)
    else:
        raise ValueError(f"the source pipeline has no method {method!r}")
    return attr[0].sum(0).detach().cpu().numpy()


def slic_labels(image: np.ndarray, n_segments: int = 200, compactness: float = 20.0) -> np.ndarray:
    """SLIC labels ``[H, W]`` for one image ``[H, W]`` or ``[H, W, 3]`` in [0, 1]."""
    from skimage.segmentation import slic

    channel_axis = -1 if image.ndim == 3 else None
    return slic(
        image,
        n_segments=n_segments,
        compactness=compactness,
        start_label=0,
        channel_axis=channel_axis,
    )


def segment_means_loop(saliency: np.ndarray, labels: np.ndarray) -> list[float]:
    """Per-superpixel mean of ``saliency``, one boolean mask per segment (the source way)."""
    means = []
    for seg in np.unique(labels):
        means.append(float(saliency[labels == seg].mean()))
    return means


def _top_k(v: list[float], k: int) -> list[int]:
    return sorted(range(len(v)), key=lambda i: (-abs(v[i]), i))[:k]


def _sign(x: float) -> int:
    return int(x > 0) - int(x < 0)


def source_metrics(a: list[float], b: list[float], k_frac: float = 0.05) -> dict[str, float]:
    """The four source metrics on two per-superpixel vectors, in plain Python."""
    n = len(a)
    k = max(1, int(math.floor(k_frac * n)))
    top_a, top_b = _top_k(a, k), _top_k(b, k)
    common = set(top_a) & set(top_b)
    same_sign = [i for i in common if _sign(a[i]) == _sign(b[i])]

    def unit(v: list[float]) -> list[float]:
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]

    ua, ub = unit(a), unit(b)
    uaa, uba = unit([abs(x) for x in a]), unit([abs(x) for x in b])
    return {
        "feature_disagreement": 1.0 - len(common) / k,
        "sign_disagreement": 1.0 - len(same_sign) / k,
        "euclidean": math.sqrt(sum((x - y) ** 2 for x, y in zip(ua, ub, strict=True))),
        "euclidean_abs": math.sqrt(sum((x - y) ** 2 for x, y in zip(uaa, uba, strict=True))),
    }


def source_compare(
    image: np.ndarray, map_a: np.ndarray, map_b: np.ndarray, n_segments: int = 200
) -> dict[str, float]:
    """One comparison the source way: SLIC on the image, loop means, plain-Python metrics."""
    labels = slic_labels(image, n_segments=n_segments)
    return source_metrics(segment_means_loop(map_a, labels), segment_means_loop(map_b, labels))
