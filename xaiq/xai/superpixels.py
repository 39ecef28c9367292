"""Superpixel segmentations and per-superpixel means of attribution maps.

A segmentation is computed once per image (on the display image in [0, 1]) and reused for
every pair of methods compared on that image. Methods (registry ``SEGMENTERS``):

- ``slic``: scikit-image SLIC with the source pipeline's settings (``n_segments=200``,
  ``compactness=20``, ``start_label=0``); grey images use ``channel_axis=None``;
- ``grid``: square patches of side ``round(sqrt(H * W / n_segments))`` (at least 1), so about
  ``n_segments`` patches; the sensible choice for 28x28 digits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.registry import Registry

SegmentFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Segmenter:
    """A segmentation method: ``fn(image, **params) -> int labels [H, W]`` and its defaults."""

    name: str
    fn: SegmentFn
    defaults: Mapping[str, Any] = field(default_factory=dict)


SEGMENTERS: Registry[Segmenter] = Registry("superpixel method")


def _slic(
    image: np.ndarray, *, n_segments: int, compactness: float, start_label: int
) -> np.ndarray:
    from skimage.segmentation import slic

    channel_axis = None if image.ndim == 2 else -1
    return slic(
        image,
        n_segments=n_segments,
        compactness=compactness,
        start_label=start_label,
        channel_axis=channel_axis,
    )


def _grid(image: np.ndarray, *, n_segments: int) -> np.ndarray:
    h, w = image.shape[:2]
    side = max(1, round(math.sqrt(h * w / n_segments)))
    cols = -(-w // side)
    rows = np.arange(h) // side
    return (rows[:, None] * cols + (np.arange(w) // side)[None, :]).astype(np.int64)


SEGMENTERS.add(
    "slic", Segmenter("slic", _slic, {"n_segments": 200, "compactness": 20.0, "start_label": 0})
)
SEGMENTERS.add("grid", Segmenter("grid", _grid, {"n_segments": 200}))


MAX_SEGMENTS = 100_000  # documented maximum of n_segments (docs/operations.md, "Limits")


def validate_segment_params(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults filled in and domains checked: ``n_segments`` int in [1, :data:`MAX_SEGMENTS`],
    ``compactness`` > 0,
    ``start_label`` 0 or 1. Unknown method or key -> a one-line error naming it."""
    segmenter = SEGMENTERS.get(method)
    unknown = sorted(set(params) - set(segmenter.defaults))
    if unknown:
        known = ", ".join(sorted(segmenter.defaults))
        raise InvalidParameterError(f"{method}: unknown parameter {unknown[0]!r}; known: {known}")
    out = {**segmenter.defaults, **{k: v for k, v in params.items() if v is not None}}
    n = out["n_segments"]
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise InvalidParameterError(f"{method}: n_segments must be an integer >= 1, got {n!r}")
    if n > MAX_SEGMENTS:
        raise InvalidParameterError(
            f"{method}: n_segments={n!r} is above its maximum {MAX_SEGMENTS}"
        )
    out["n_segments"] = int(n)
    if "compactness" in out:
        c = out["compactness"]
        if isinstance(c, bool) or not isinstance(c, int | float) or not (0 < c < math.inf):
            raise InvalidParameterError(f"{method}: compactness must be > 0, got {c!r}")
        out["compactness"] = float(c)
    start = out.get("start_label", 0)
    if start not in (0, 1) or isinstance(start, bool):
        raise InvalidParameterError(f"{method}: start_label must be 0 or 1, got {start!r}")
    return out


def _as_images(images: Any) -> np.ndarray:
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim not in (3, 4):
        raise InvalidParameterError(
            f"images must be [N, H, W] or [N, H, W, C], got shape {arr.shape}"
        )
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if not np.all(np.isfinite(arr)):
        raise InvalidParameterError("images have non-finite pixel values")
    return arr


def segment(images: Any, method: str = "slic", **params: Any) -> np.ndarray:
    """Superpixel labels for each image.

    Args:
        images: ``[N, H, W]`` (grey) or ``[N, H, W, C]`` floats in [0, 1] (numpy or tensor,
            any device); the display images, not normalised model inputs.
        method: a name in ``SEGMENTERS`` (``slic`` or ``grid``).
        **params: method parameters (see :func:`validate_segment_params`).

    Returns:
        int64 ``[N, H, W]``; image ``i``'s labels are its own (not offset across images).
    """
    clean = validate_segment_params(method, params)
    fn = SEGMENTERS.get(method).fn
    arr = _as_images(images)
    if arr.shape[0] == 0:
        return np.zeros(arr.shape[:3], dtype=np.int64)
    return np.stack([np.asarray(fn(img, **clean), dtype=np.int64) for img in arr])


def segment_means(maps: Any, labels: Any) -> list[np.ndarray]:
    """Mean of each map over each of its image's superpixels.

    Args:
        maps: ``[N, H, W]`` attributions (numpy or tensor, any device, any float dtype).
        labels: ``[N, H, W]`` integer superpixel labels (as from :func:`segment`).

    Returns:
        ``N`` float64 vectors; vector ``i`` has one entry per distinct label of image ``i``,
        in increasing label order (labels with gaps are relabelled ``0..n_i-1``).

    One ``bincount`` over the whole batch: no Python loop over segments.
    """
    if hasattr(maps, "detach"):
        maps = maps.detach().cpu().numpy()
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    m = np.asarray(maps, dtype=np.float64)
    lab = np.asarray(labels)
    if m.ndim == 2 and lab.ndim == 2:  # one image
        m, lab = m[None], lab[None]
    if m.ndim != 3 or m.shape != lab.shape:
        raise InvalidParameterError(
            f"maps {tuple(m.shape)} and labels {tuple(lab.shape)} must both be [N, H, W]"
        )
    if not np.issubdtype(lab.dtype, np.integer):
        raise InvalidParameterError(f"labels must be integers, got dtype {lab.dtype}")
    n = m.shape[0]
    if n == 0:
        return []
    flat = lab.reshape(n, -1).astype(np.int64)
    flat = flat - flat.min(axis=1, keepdims=True)  # labels start at 0 in every image
    span = flat.max(axis=1) + 1
    offsets = np.concatenate([[0], np.cumsum(span)[:-1]])
    ids = (flat + offsets[:, None]).ravel()
    total = int(span.sum())
    counts = np.bincount(ids, minlength=total)
    sums = np.bincount(ids, weights=m.reshape(-1), minlength=total)
    out = []
    for i in range(n):  # a loop over images, not segments
        c = counts[offsets[i] : offsets[i] + span[i]]
        s = sums[offsets[i] : offsets[i] + span[i]]
        present = c > 0
        out.append(s[present] / c[present])
    return out
