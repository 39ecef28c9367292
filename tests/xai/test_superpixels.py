"""Superpixel segmentations and vectorised per-superpixel means."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xaiq.xai.errors import InvalidParameterError, UnknownNameError
from xaiq.xai.superpixels import SEGMENTERS, segment, segment_means


def slow_means(m: np.ndarray, lab: np.ndarray) -> np.ndarray:
    return np.array([m[lab == v].mean() for v in np.unique(lab)])


def test_segment_means_equal_a_loop_over_segments_for_every_image():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 20, 24))
    labels = rng.integers(0, 30, size=(3, 20, 24))
    labels[1] += 5  # labels not starting at 0
    labels[2] = np.where(labels[2] % 2 == 0, labels[2], 100)  # gaps between labels
    got = segment_means(maps, labels)
    assert len(got) == 3
    for i in range(3):
        want = slow_means(maps[i], labels[i])
        assert got[i].dtype == np.float64
        np.testing.assert_allclose(got[i], want, rtol=1e-12)


def test_segment_means_accept_tensors_and_a_single_image():
    maps = torch.arange(16, dtype=torch.float32).reshape(1, 4, 4)
    labels = torch.tensor([[0, 0, 1, 1]] * 4).reshape(1, 4, 4)
    (means,) = segment_means(maps, labels)
    np.testing.assert_allclose(means, [52 / 8, 68 / 8])  # columns 0-1, columns 2-3
    (single,) = segment_means(maps[0].numpy(), labels[0].numpy())
    np.testing.assert_allclose(single, means)


def test_segment_means_refuse_mismatched_shapes_and_float_labels():
    with pytest.raises(InvalidParameterError, match="maps"):
        segment_means(np.zeros((1, 4, 4)), np.zeros((1, 4, 5), dtype=int))
    with pytest.raises(InvalidParameterError, match="integers"):
        segment_means(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)))


@pytest.mark.parametrize(
    ("shape", "n_segments", "side"), [((28, 28), 49, 4), ((28, 28), 200, 2), ((30, 45), 6, 15)]
)
def test_grid_patches_are_squares_of_the_expected_side(shape, n_segments, side):
    labels = segment(np.zeros((2, *shape)), "grid", n_segments=n_segments)
    assert labels.shape == (2, *shape) and labels.dtype == np.int64
    h, w = shape
    assert labels.max() + 1 == -(-h // side) * -(-w // side)
    assert (labels[0] == labels[0, 0, 0]).sum() == side * side
    np.testing.assert_array_equal(labels[0], labels[1])


def test_grid_with_one_segment_covers_the_image():
    assert np.all(segment(np.zeros((1, 28, 28)), "grid", n_segments=1) == 0)


def test_slic_segments_colour_and_grey_images_into_about_n_segments():
    from skimage import data

    cat = data.chelsea()[::2, ::2] / 255.0
    colour = segment(cat[None], "slic", n_segments=50)
    grey = segment(cat.mean(axis=2)[None], "slic", n_segments=50)
    for labels in (colour, grey):
        assert labels.shape == (1, *cat.shape[:2])
        assert labels.min() == 0  # start_label=0
        assert 25 <= len(np.unique(labels)) <= 75


def test_slic_with_the_source_settings_is_skimage_slic():
    from skimage import data
    from skimage.segmentation import slic

    cat = data.chelsea()[::3, ::3] / 255.0
    want = slic(cat, n_segments=200, compactness=20, start_label=0, channel_axis=-1)
    np.testing.assert_array_equal(segment(torch.from_numpy(cat)[None])[0], want)


@pytest.mark.parametrize(
    ("method", "params", "match"),
    [
        ("slic", {"n_segments": 0}, "n_segments"),
        ("grid", {"n_segments": -3}, "n_segments"),
        ("grid", {"n_segments": 2.5}, "n_segments"),
        ("slic", {"compactness": 0}, "compactness"),
        ("slic", {"start_label": 2}, "start_label"),
        ("grid", {"compactness": 3}, "unknown parameter 'compactness'"),
    ],
)
def test_bad_segmentation_parameters_are_refused(method, params, match):
    with pytest.raises(InvalidParameterError, match=match):
        segment(np.zeros((1, 8, 8)), method, **params)


def test_unknown_segmentation_method_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="grid, slic"):
        segment(np.zeros((1, 8, 8)), "watershed")
    assert SEGMENTERS.names() == ["grid", "slic"]
