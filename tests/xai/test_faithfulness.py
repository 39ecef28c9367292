"""Deletion and insertion against a straightforward one-image loop of the RISE protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from tests.helpers import ForwardRecorder
from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.explainers import explain
from xaiq.xai.faithfulness import (
    deletion_insertion,
    gaussian_kernel,
    superpixel_deletion_insertion,
)
from xaiq.xai.superpixels import segment


def _blur_reference(img: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """Per-channel convolution with zero padding, by scipy, from the sampled kernel built by
    hand (``kernel="sampled"``)."""
    r = np.arange(size) - size // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    g /= g.sum()
    return np.stack([ndimage.convolve(ch, g, mode="constant", cval=0.0) for ch in img])


def _rise_blur(img: np.ndarray) -> np.ndarray:
    """The RISE authors' insertion blur: an 11x11 impulse through gaussian_filter(sigma=5,
    reflect mode), then conv2d(padding=5) per channel (zero padding)."""
    impulse = np.zeros((11, 11))
    impulse[5, 5] = 1.0
    kern = ndimage.gaussian_filter(impulse, 5.0)
    return np.stack([ndimage.correlate(ch, kern, mode="constant", cval=0.0) for ch in img])


def _game(module, start, finish, order, step, target) -> list[float]:
    """The reference loop: one image, one forward per step, pixels replaced ``step`` at a time
    in ``order`` (flat indices); the probability recorded before every change and at the end."""
    img = start.copy()
    c = img.shape[0]
    n_steps = math.ceil(order.size / step)
    probs = []
    for i in range(n_steps + 1):
        with torch.no_grad():
            logits = module(torch.from_numpy(img[None]).float())
        probs.append(float(torch.softmax(logits.double(), 1)[0, target]))
        if i < n_steps:
            coords = order[step * i : step * (i + 1)]
            flat, fin = img.reshape(c, -1), finish.reshape(c, -1)
            flat[:, coords] = fin[:, coords]
    return probs


def _auc(curve: list[float]) -> float:
    return (sum(curve) - curve[0] / 2 - curve[-1] / 2) / (len(curve) - 1)


@pytest.fixture(scope="module")
def case(digits_model, digits_batch):
    x, t = digits_batch
    maps = explain("integrated_gradients", digits_model, x, t, n_steps=16)
    return x[:3], maps[:3], t[:3]


@pytest.mark.parametrize(
    ("order", "substrate", "step"), [("signed", "baseline", None), ("abs", "blur", 50)]
)
def test_pixel_curves_and_aucs_equal_a_one_image_loop(digits_model, case, order, substrate, step):
    x, maps, t = case
    got = deletion_insertion(
        digits_model,
        x,
        maps,
        t,
        order=order,
        substrate=substrate,
        step=step,
        kernel="sampled",
        ties="index",
    )
    module = digits_model.module
    for j in range(x.shape[0]):
        img = x[j].numpy().astype(np.float64)
        m = maps[j].numpy().reshape(-1)
        order_j = np.argsort(-(np.abs(m) if order == "abs" else m), kind="stable")
        blurred = _blur_reference(img, 11, 5.0)
        sub = np.zeros_like(img) if substrate == "baseline" else blurred
        width = step or img.shape[2]
        dele = _game(module, img, sub, order_j, width, int(t[j]))
        ins = _game(module, blurred, img, order_j, width, int(t[j]))
        assert int(got.n_steps[j]) == math.ceil(784 / width) == len(dele) - 1
        np.testing.assert_allclose(got.deletion[j].numpy(), dele, atol=2e-6)
        np.testing.assert_allclose(got.insertion[j].numpy(), ins, atol=2e-6)
        assert float(got.deletion_auc[j]) == pytest.approx(_auc(dele), abs=2e-6)
        assert float(got.insertion_auc[j]) == pytest.approx(_auc(ins), abs=2e-6)
    # the first deletion point is the original image, the last is all substrate
    with torch.no_grad():
        p0 = torch.softmax(module(x), 1).gather(1, t[:, None]).squeeze(1)
    np.testing.assert_allclose(got.deletion[:, 0].numpy(), p0.numpy(), atol=1e-6)


def test_superpixel_curves_equal_a_one_image_loop_over_whole_superpixels(digits_model, case):
    x, maps, t = case
    labels = segment(x[:, 0].numpy(), "grid", n_segments=16)
    labels[1] = labels[1] * 3 + 5  # gaps in the label ids change nothing
    got = superpixel_deletion_insertion(
        digits_model, x, maps, t, labels, step=3, kernel="sampled", ties="index"
    )
    for j in range(x.shape[0]):
        img = x[j].numpy().astype(np.float64)
        ids = np.unique(labels[j])
        means = np.array([maps[j].numpy()[labels[j] == i].mean() for i in ids])
        sp_order = ids[np.argsort(-means, kind="stable")]
        pixel_order = np.concatenate([np.flatnonzero(labels[j] == i) for i in sp_order])
        sizes = [int((labels[j] == i).sum()) for i in sp_order]
        assert len(set(sizes)) == 1  # equal grid cells: 3 superpixels = a fixed pixel step
        blurred = _blur_reference(img, 11, 5.0)
        dele = _game(digits_model.module, img, np.zeros_like(img), pixel_order, 3 * sizes[0], t[j])
        ins = _game(digits_model.module, blurred, img, pixel_order, 3 * sizes[0], t[j])
        assert int(got.n_steps[j]) == math.ceil(16 / 3)
        np.testing.assert_allclose(got.curves(j), np.array([dele, ins]), atol=2e-6)


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 26 * 26, 10),
    ).eval()


def test_results_do_not_depend_on_the_batch_size(digits_model, case):
    x, maps, t = case
    runs = [deletion_insertion(digits_model, x, maps, t, batch_size=b) for b in (None, 1, 7, 200)]
    for r in runs[1:]:
        torch.testing.assert_close(r.deletion, runs[0].deletion, atol=1e-6, rtol=0)
        torch.testing.assert_close(r.insertion, runs[0].insertion, atol=1e-6, rtol=0)


def test_forwards_never_exceed_the_batch_size_however_many_steps(case):
    x, maps, t = case
    rec = ForwardRecorder(_tiny_model())
    got = deletion_insertion(rec, x, maps, t, step=1, batch_size=64)  # 785 steps per game
    assert max(rec.sizes) == 64 and sum(rec.sizes) == 2 * 3 * 785
    assert got.deletion.shape == (3, 785)
    coarse = deletion_insertion(rec.inner, x, maps, t, step=28, batch_size=64)
    fine_every_28th = got.deletion[:, ::28]  # the same images: steps 0, 28, ..., 784
    torch.testing.assert_close(coarse.deletion, fine_every_28th, atol=1e-6, rtol=0)


class _InputRecorder(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        return self.inner(x)


def test_step_images_hold_exactly_the_start_or_the_finish_pixels(digits_model, case):
    # every pixel of every step image is bit-for-bit its start's or its finish's value
    x, maps, t = case
    x = x * 3.7 - 1.3  # values whose difference does not round-trip in float32
    rec = _InputRecorder(digits_model.module)
    deletion_insertion(
        rec, x, maps, t, substrate="blur", step=100, batch_size=5, kernel="sampled", ties="index"
    )
    shown = torch.cat(rec.inputs)
    n, _, h, w = x.shape
    blurred = torch.nn.functional.conv2d(
        x, gaussian_kernel(11, 5.0)[None, None], padding=5
    )  # the substrate and the insertion start
    order = torch.argsort(-maps.reshape(n, -1), dim=1, stable=True)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(h * w).expand(n, -1))
    expected = []
    for start, finish in ((x, blurred), (blurred, x)):
        for j in range(n):
            for i in range(math.ceil(h * w / 100) + 1):
                changed = (ranks[j] < i * 100).view(1, h, w)
                expected.append(torch.where(changed, finish[j], start[j]))
    assert torch.equal(shown, torch.stack(expected))


def test_a_model_that_ignores_its_input_gives_its_constant_probability_as_auc():
    class Constant(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.logits = torch.nn.Parameter(torch.tensor([0.0, math.log(3.0)]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.logits.expand(x.shape[0], 2)

    x = torch.rand(2, 3, 5, 7)
    got = deletion_insertion(Constant(), x, torch.randn(2, 5, 7), [1, 0])
    assert got.n_steps.tolist() == [5, 5]  # 35 pixels, a row (7) per step
    assert got.deletion_auc.tolist() == pytest.approx([0.75, 0.25])
    assert got.insertion_auc.tolist() == pytest.approx([0.75, 0.25])


def test_the_blur_kernel_is_a_normalised_11_by_11_gaussian():
    k = gaussian_kernel(11, 5.0)
    assert k.shape == (11, 11) and float(k.sum()) == pytest.approx(1.0)
    assert float(k[5, 5] / k[5, 0]) == pytest.approx(math.exp(25 / 50))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"substrate": "noise"}, "substrate must be one of baseline, blur, mean, road"),
        ({"kernel": "box"}, "kernel must be one of reference, sampled"),
        ({"ties": "lower"}, "ties must be one of random, index, reverse"),
        ({"first": "middle"}, "first must be one of most, least"),
        ({"road_noise": -1.0}, "road_noise must be in"),
        ({"order": "random"}, "order must be one of signed, abs"),
        ({"step": 0}, "step must be an integer >= 1"),
        ({"blur_kernel": 10}, "blur_kernel must be an odd integer"),
        ({"blur_sigma": 0}, "blur_sigma must be > 0"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
    ],
)
def test_bad_parameters_are_refused_naming_the_value(digits_model, case, kwargs, needle):
    x, maps, t = case
    with pytest.raises(InvalidParameterError, match=needle):
        deletion_insertion(digits_model, x, maps, t, **kwargs)


def test_maps_of_the_wrong_shape_or_with_nan_are_refused(digits_model, case):
    x, maps, t = case
    with pytest.raises(InvalidParameterError, match="maps must be"):
        deletion_insertion(digits_model, x, maps[:, :5], t)
    bad = maps.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(InvalidParameterError, match="non-finite"):
        deletion_insertion(digits_model, x, bad, t)


def test_images_with_inf_or_nan_are_refused(digits_model, case):
    # the step images are lerp(start, finish, 0 or 1): exact for finite pixels only
    x, maps, t = case
    for value in (float("inf"), float("nan")):
        bad = x.clone()
        bad[1, 0, 3, 3] = value
        with pytest.raises(InvalidParameterError, match="images have non-finite"):
            deletion_insertion(digits_model, bad, maps, t)
