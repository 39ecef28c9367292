"""The disagreement step: superpixels once per image and all 10 pairs of 5 methods, against
the source way (SLIC again for every comparison, a Python loop over segments, plain-Python
metrics). Maps are given (seeded smooth random maps): this row times the step after the
explainers, on skimage photos at 224x224 with SLIC n_segments=200 as in the source document.

The library computes all ten metrics of the metric contract (docs/architecture.md); the
source way only its four.
Target: >= 8x the source way's comparisons per second.
"""

from __future__ import annotations

import itertools

import numpy as np

from bench.baselines.source_pipeline import source_compare
from bench.common import photo_inputs, require
from bench.harness import Context, Row, Skip, Target, rate_row

METHODS = ("integrated_gradients", "saliency", "grad_cam", "rise", "smoothgrad")


def synthetic_maps(n_methods: int, n_images: int, size: int, seed: int = 0) -> np.ndarray:
    """``[n_methods, n_images, size, size]`` float32 smooth signed maps (blurred noise)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n_methods, n_images, size, size)).astype(np.float32)
    return gaussian_filter(noise, sigma=(0, 0, 6, 6)).astype(np.float32)


def run(ctx: Context) -> list[Row]:
    name = "disagreement step, 10 pairs of 5 methods, SLIC 200 (224x224)"
    if not ctx.wants(name):
        return []
    try:
        sp = require("xaiq.xai.superpixels", "segment", "segment_means")
        metrics = require("xaiq.xai.metrics", "compare_batch")
    except Skip as exc:
        return [Row(name=name, skipped=str(exc))]
    n_images = ctx.pick(2, 8)
    _x, shown = photo_inputs(ctx, n_images)
    maps = synthetic_maps(len(METHODS), n_images, shown.shape[1])
    pairs = list(itertools.combinations(range(len(METHODS)), 2))
    comparisons = len(pairs) * n_images

    def library() -> None:
        labels = sp.segment(shown, "slic", n_segments=200, compactness=20)
        vecs = [sp.segment_means(maps[m], labels) for m in range(len(METHODS))]
        for a, b in pairs:
            metrics.compare_batch(vecs[a], vecs[b], k_frac=0.05)

    def source() -> None:
        for a, b in pairs:
            for i in range(n_images):
                source_compare(shown[i], maps[a, i], maps[b, i])

    tm = ctx.time({"lib": library, "source": source}, reps=ctx.pick(None, 3))
    return [
        rate_row(
            f"disagreement step, 10 pairs x {n_images} img, SLIC 200 (224x224) vs source way",
            comparisons,
            tm["lib"],
            comparisons,
            tm["source"],
            unit="comparisons/s",
            baseline_name="SLIC per comparison, loop over segments",
            targets=(Target(">=", 8.0),),
        )
    ]
