"""The attack reports how many images' searches have ended, and reporting changes nothing."""

from __future__ import annotations

import dataclasses

import torch

from xaiq.xai.attack import rise_guided_search

# misclassified by digits-cnn-weak: two repaired quickly, two that fall back and fail
MISCLASSIFIED = [5, 122, 2, 50]


def test_progress_counts_ended_searches_up_to_every_image_and_changes_no_result() -> None:
    from xaiq.xai.digits import digits_arrays
    from xaiq.xai.models import load_model

    weak = load_model("digits-cnn-weak", device="cpu")
    images, labels = digits_arrays()
    x = weak.preprocess(images[MISCLASSIFIED])
    y = torch.from_numpy(labels[MISCLASSIFIED])
    kwargs = dict(sample_ids=MISCLASSIFIED, max_iters=60, n_masks=200, seed=3)
    seen: list[int] = []
    with_progress = rise_guided_search(weak, x, y, progress=seen.append, **kwargs)
    without = rise_guided_search(weak, x, y, **kwargs)
    assert seen == sorted(seen) and seen[-1] == len(MISCLASSIFIED)
    assert len(set(seen)) > 1  # it moved during the search, not only at its end
    for a, b in zip(with_progress, without, strict=True):
        assert _same(dataclasses.asdict(a), dataclasses.asdict(b))


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(map(_same, a, b))
    return a == b
