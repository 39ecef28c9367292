"""RISE: mask geometry against scikit-image, the saliency formula, seeding, batching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.helpers import ForwardRecorder
from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.rise import generate_masks, iter_masks, mask_layout, rise_saliency


def _reference_masks(n, s, p1, size, seed):
    """Independent slow reference: scikit-image resize per mask, then the crop (the authors'
    recipe), from the same random grids and offsets."""
    from skimage.transform import resize

    h, w = size
    grids, offsets = mask_layout(torch.arange(n), s, p1, size, seed=seed)
    ch, cw = math.ceil(h / s), math.ceil(w / s)
    out = []
    for grid, (dy, dx) in zip(grids.numpy(), offsets.tolist(), strict=True):
        up = resize(
            grid.astype(np.float64),
            ((s + 1) * ch, (s + 1) * cw),
            order=1,
            mode="reflect",
            anti_aliasing=False,
        )
        out.append(up[dy : dy + h, dx : dx + w])
    return np.stack(out)


@pytest.mark.parametrize(
    ("size", "s", "p1"),
    [((28, 28), 7, 0.5), ((30, 17), 4, 0.3), ((13, 21), 5, 0.6), ((9, 9), 1, 0.5)],
)
def test_masks_match_skimage_resize_pixel_for_pixel(size, s, p1):
    ours = generate_masks(24, s, p1, size, seed=11, device="cpu").numpy()
    ref = _reference_masks(24, s, p1, size, seed=11)
    assert ours.shape == (24, *size)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


def test_mask_layout_keeps_cells_with_probability_p1_and_offsets_inside_a_cell():
    grids, offsets = mask_layout(torch.arange(4000), 7, 0.3, (28, 28), seed=2)
    assert abs(grids.float().mean().item() - 0.3) < 0.01
    assert int(offsets.min()) == 0 and int(offsets.max()) == 3  # cell = ceil(28 / 7) = 4
    assert set(torch.unique(offsets).tolist()) == {0, 1, 2, 3}


def test_masks_are_deterministic_under_a_seed_and_independent_of_chunking():
    a = generate_masks(50, 7, 0.5, (28, 28), seed=3, device="cpu")
    b = generate_masks(50, 7, 0.5, (28, 28), seed=3, device="cpu")
    c = generate_masks(50, 7, 0.5, (28, 28), seed=4, device="cpu")
    chunked = torch.cat(list(iter_masks(50, 7, 0.5, (28, 28), seed=3, device="cpu", chunk=7)))
    assert torch.equal(a, b)
    assert torch.equal(a, chunked)
    assert not torch.equal(a, c)
    assert torch.equal(generate_masks(20, 7, 0.5, (28, 28), seed=3, device="cpu"), a[:20])
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_rise_from_explicit_masks_equals_the_formula(digits_model, digits_batch):
    images, labels = digits_batch
    x, t = images[:3], labels[:3]
    masks = torch.rand(37, 28, 28, generator=torch.Generator().manual_seed(0))
    p1 = 0.4
    got = rise_saliency(digits_model.module, x, t, masks=masks, p1=p1, batch_size=16)
    expected = torch.zeros(3, 28, 28)
    with torch.no_grad():
        for j in range(3):
            for m in masks:
                prob = digits_model.module(x[j : j + 1] * m).softmax(dim=1)[0, t[j]]
                expected[j] += prob * m
    expected /= 37 * p1
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_small_mask_chunks_share_one_forward_across_images(digits_model, digits_batch):
    images, labels = digits_batch
    rec = ForwardRecorder(digits_model.module)
    rise_saliency(rec, images, labels, n_masks=10, batch_size=40)
    assert rec.sizes == [40, 20]  # 4 images x 10 masks, then the other 2 images


def test_forward_batches_never_exceed_batch_size_however_many_masks(digits_model, digits_batch):
    images, labels = digits_batch
    rec = ForwardRecorder(digits_model.module)
    rise_saliency(rec, images[:2], labels[:2], n_masks=300, batch_size=64)
    assert max(rec.sizes) <= 64
    assert sum(rec.sizes) == 2 * 300


def test_saliency_of_an_image_does_not_depend_on_its_batch(digits_model, digits_batch):
    images, labels = digits_batch
    together = rise_saliency(digits_model.module, images, labels, n_masks=300, seed=5)
    alone = rise_saliency(digits_model.module, images[2:3], labels[2:3], n_masks=300, seed=5)
    torch.testing.assert_close(together[2:3], alone, rtol=1e-5, atol=1e-7)
    other_seed = rise_saliency(digits_model.module, images[2:3], labels[2:3], n_masks=300, seed=6)
    assert not torch.allclose(alone, other_seed)


def test_rise_explainer_is_registered_with_the_reference_defaults(digits_model, digits_batch):
    from xaiq.xai.explainers import EXPLAINERS, explain, validate_params

    assert "rise" in EXPLAINERS
    assert validate_params("rise", {}) == {"n_masks": 4000, "s": 7, "p1": 0.5, "batch_size": None}
    images, labels = digits_batch
    maps = explain("rise", digits_model, images[:2], labels[:2], n_masks=64, seed=1)
    direct = rise_saliency(digits_model.module, images[:2], labels[:2], n_masks=64, seed=1)
    assert maps.shape == (2, 28, 28) and maps.dtype == torch.float32
    torch.testing.assert_close(maps, direct)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"n_masks": 0}, "n_masks"), ({"s": 0}, "s must"), ({"p1": 1.0}, "p1"), ({"p1": 0.0}, "p1")],
)
def test_bad_rise_parameters_raise_a_one_line_error_naming_them(
    digits_model, digits_batch, kwargs, needle
):
    images, labels = digits_batch
    with pytest.raises(InvalidParameterError) as err:
        rise_saliency(digits_model.module, images[:1], labels[:1], **kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)
