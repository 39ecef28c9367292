"""Explainers: a contract over every registered method, and equality with direct Captum calls."""

from __future__ import annotations

import pytest
import torch
from captum.attr import (
    DeepLift,
    GradientShap,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    Occlusion,
    Saliency,
)
from torch import nn

from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.explainers import EXPLAINERS, explain, validate_params
from xaiq.xai.explainers.captum_methods import noise_scale
from xaiq.xai.seeding import sample_generator

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# cheaper settings for the contract test only (defaults are exercised below and in the CLI)
FAST = {"rise": {"n_masks": 500}} if "rise" in EXPLAINERS else {}


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> None:
    scale = float(b.abs().max()) or 1.0
    torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("method", EXPLAINERS.names())
def test_every_explainer_meets_the_contract(method, digits_model, digits_batch):
    x, t = digits_batch
    params = {k: v for k, v in FAST.get(method, {}).items() if k in EXPLAINERS.get(method).params}
    maps = explain(method, digits_model, x, t, seed=3, **params)
    assert maps.shape == (x.shape[0], 28, 28)
    assert maps.dtype == torch.float32
    assert maps.device == digits_model.device
    assert not maps.requires_grad
    assert torch.isfinite(maps).all()
    assert maps.abs().sum() > 0, "an all-zero map explains nothing"

    again = explain(method, digits_model, x, t, seed=3, **params)
    torch.testing.assert_close(again, maps, rtol=0, atol=0)

    alone = explain(method, digits_model, x[4:5], t[4:5], seed=3, sample_ids=[4], **params)
    close(alone[0], maps[4])

    if EXPLAINERS.get(method).stochastic:
        other = explain(method, digits_model, x, t, seed=4, **params)
        assert not torch.equal(other, maps), "the seed changes a stochastic method's maps"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("method", EXPLAINERS.names())
def test_every_explainer_runs_on_cuda_like_on_cpu(method, digits_batch):
    from xaiq.xai.models import load_model

    x, t = digits_batch
    cpu = explain(method, load_model("digits-cnn", "cpu"), x, t)
    gpu = explain(method, load_model("digits-cnn", "cuda"), x.cuda(), t.cuda())
    assert gpu.device.type == "cuda"
    close(gpu.cpu(), cpu, rtol=1e-3)


def test_integrated_gradients_equals_captum(digits_model, digits_batch):
    x, t = digits_batch[0][:3], digits_batch[1][:3]
    want = IntegratedGradients(digits_model.module).attribute(
        x, baselines=torch.zeros_like(x), target=t, n_steps=50
    )
    close(explain("integrated_gradients", digits_model, x, t), want.sum(1))
    small = explain("integrated_gradients", digits_model, x, t, internal_batch_size=31)
    close(small, want.sum(1))
    # fewer rows per pass than images: the images are split too, every method of Captum
    for method in ("gausslegendre", "riemann_trapezoid"):
        want = IntegratedGradients(digits_model.module).attribute(
            x, baselines=torch.zeros_like(x), target=t, n_steps=7, method=method
        )
        got = explain(
            "integrated_gradients",
            digits_model,
            x,
            t,
            n_steps=7,
            integration_method=method,
            internal_batch_size=2,
        )
        close(got, want.sum(1))


def test_integrated_gradients_is_complete(digits_model, digits_batch):
    x, t = digits_batch
    maps = explain("integrated_gradients", digits_model, x, t, n_steps=200)
    with torch.no_grad():
        gap = digits_model.module(x).gather(1, t[:, None]) - digits_model.module(
            torch.zeros_like(x)
        ).gather(1, t[:, None])
    close(maps.sum(dim=(1, 2)), gap[:, 0], rtol=1e-2)


@pytest.mark.parametrize("use_abs", [True, False])
def test_saliency_equals_captum(digits_model, digits_batch, use_abs):
    x, t = digits_batch
    want = Saliency(digits_model.module).attribute(x, target=t, abs=use_abs).sum(1)
    close(explain("saliency", digits_model, x, t, abs=use_abs), want)


def test_saliency_over_several_passes_equals_captum_in_one(digits_model, digits_batch):
    from xaiq.xai.explainers.captum_methods import images_per_pass

    x, t = digits_batch
    reps = images_per_pass(x) // len(x) + 2  # more images than one pass holds
    x, t = x.repeat(reps, 1, 1, 1), t.repeat(reps)
    want = Saliency(digits_model.module).attribute(x, target=t).sum(1)
    close(explain("saliency", digits_model, x, t), want)


@pytest.mark.parametrize(
    ("method", "captum_cls"),
    [("input_x_gradient", InputXGradient), ("guided_backprop", GuidedBackprop)],
)
def test_gradient_methods_equal_captum(method, captum_cls, digits_model, digits_batch):
    x, t = digits_batch
    want = captum_cls(digits_model.module).attribute(x, target=t).sum(1)
    close(explain(method, digits_model, x, t), want)


def test_deeplift_equals_captum(digits_model, digits_batch):
    x, t = digits_batch
    want = DeepLift(digits_model.module).attribute(x, baselines=torch.zeros_like(x), target=t)
    close(explain("deeplift", digits_model, x, t), want.sum(1))


def test_occlusion_equals_captum_with_the_default_window(digits_model, digits_batch):
    x, t = digits_batch
    x, t = x[:3], t[:3]
    want = Occlusion(digits_model.module).attribute(
        x,
        sliding_window_shapes=(1, 4, 4),
        strides=(1, 2, 2),
        baselines=0.0,
        target=t,
        perturbations_per_eval=64,
    )
    close(explain("occlusion", digits_model, x, t), want.sum(1))
    want = Occlusion(digits_model.module).attribute(
        x,
        sliding_window_shapes=(1, 7, 7),
        strides=(1, 3, 3),
        baselines=0.0,
        target=t,
        perturbations_per_eval=64,
    )
    close(explain("occlusion", digits_model, x, t, window=7, stride=3), want.sum(1))


def test_grad_cam_equals_captum_on_the_last_conv_layer(digits_model, digits_batch):
    x, t = digits_batch
    module = digits_model.module
    cam = LayerGradCam(module, module.features[3]).attribute(x, target=t, relu_attributions=True)
    want = LayerAttribution.interpolate(cam, (28, 28), interpolate_mode="bilinear")[:, 0]
    got = explain("grad_cam", digits_model, x, t)
    close(got, want)
    assert (got >= 0).all()
    first = explain("grad_cam", digits_model, x, t, layer="features.0")
    assert not torch.allclose(first, got)


def test_grad_cam_names_a_missing_layer(digits_model, digits_batch):
    x, t = digits_batch
    with pytest.raises(InvalidParameterError, match="no layer named 'features.9'"):
        explain("grad_cam", digits_model, x, t, layer="features.9")


def test_smoothgrad_equals_captum_saliency_averaged_over_the_same_noise(digits_model, digits_batch):
    x, t = digits_batch
    ids, n_samples, stdev = [10, 11, 12, 13, 14, 15], 4, 0.2
    got = explain(
        "smoothgrad", digits_model, x, t, seed=9, sample_ids=ids, n_samples=n_samples, stdev=stdev
    )
    sigma = noise_scale(x, stdev)
    saliency = Saliency(digits_model.module)
    for i, sid in enumerate(ids):
        gen = sample_generator(9, sid, "cpu", stream=1)
        noise = torch.randn((n_samples, *x.shape[1:]), generator=gen)
        noisy = x[i : i + 1] + noise * sigma[i]
        want = saliency.attribute(noisy, target=t[i].repeat(n_samples), abs=True).mean(0).sum(0)
        close(got[i], want)


def test_smoothgrad_without_noise_is_saliency(digits_model, digits_batch):
    x, t = digits_batch
    close(
        explain("smoothgrad", digits_model, x, t, stdev=0.0, n_samples=2),
        explain("saliency", digits_model, x, t),
    )


def test_gradient_shap_equals_captum_on_a_linear_model():
    # On a linear model the gradient is constant, so Captum's randomness does not matter and
    # both estimators equal weight * input exactly.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 5, 3)).eval()
    x = torch.randn(4, 2, 5, 5)
    t = torch.tensor([0, 1, 2, 1])
    want = GradientShap(model).attribute(x, baselines=torch.zeros_like(x), target=t, n_samples=6)
    close(explain("gradient_shap", model, x, t, n_samples=6), want.sum(1))


def test_deeplift_and_guided_backprop_handle_inplace_relus_without_touching_the_model():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=5).eval()
    x = torch.randn(2, 3, 32, 32)
    for method in ("deeplift", "guided_backprop"):
        maps = explain(method, model, x, torch.tensor([1, 3]))
        assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all()
    assert model.relu.inplace, "the caller's model keeps its in-place ReLUs"


class ReusedReLU(nn.Module):
    """conv -> relu -> conv -> relu with one ReLU module called twice (as in ResNet blocks)."""

    def __init__(self, shared: bool) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.relu2 = self.relu if shared else nn.ReLU()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu2(self.conv2(self.relu(self.conv1(x)))))


def test_deeplift_on_a_reused_relu_equals_captum_on_separate_relus():
    torch.manual_seed(1)
    shared = ReusedReLU(shared=True).eval()
    separate = ReusedReLU(shared=False).eval()
    separate.load_state_dict(shared.state_dict())
    x, t = torch.randn(3, 1, 6, 6), torch.tensor([0, 1, 2])
    want = DeepLift(separate).attribute(x, baselines=torch.zeros_like(x), target=t).sum(1)
    close(explain("deeplift", shared, x, t), want)


@pytest.mark.parametrize(
    ("method", "params", "match"),
    [
        ("integrated_gradients", {"n_steps": 0}, "n_steps"),
        ("integrated_gradients", {"integration_method": "simpson"}, "integration_method"),
        ("smoothgrad", {"stdev": -1}, "stdev"),
        ("occlusion", {"window": 0}, "window"),
        ("saliency", {"abs": "yes"}, "abs"),
        ("saliency", {"n_steps": 5}, "unknown parameter 'n_steps'"),
    ],
)
def test_bad_parameters_are_refused_at_validation(method, params, match):
    with pytest.raises(InvalidParameterError, match=match):
        validate_params(method, params)


def test_every_explainer_documents_itself_and_validates_its_defaults():
    for name in EXPLAINERS.names():
        explainer = EXPLAINERS.get(name)
        assert explainer.doc, f"{name} has no docstring"
        assert set(validate_params(name, {})) == set(explainer.params)
        # validated parameters go back into explain(method, model, images, targets, **params)
        assert not set(explainer.params) & {
            "method",
            "model",
            "images",
            "targets",
            "seed",
            "sample_ids",
        }


def test_validated_parameters_can_be_passed_back_to_explain(digits_model, digits_batch):
    x, t = digits_batch
    params = validate_params("integrated_gradients", {"n_steps": "4"})
    got = explain("integrated_gradients", digits_model, x[:2], t[:2], **params)
    want = IntegratedGradients(digits_model.module).attribute(
        x[:2], baselines=torch.zeros_like(x[:2]), target=t[:2], n_steps=4
    )
    close(got, want.sum(1))


def test_cpu_passes_are_cache_sized_for_small_images_and_never_one_large_image():
    from xaiq.xai.explainers.captum_methods import CPU_MIN_IMAGES, images_per_pass

    assert images_per_pass(torch.zeros(2, 1, 28, 28)) == (1 << 17) // 784
    assert images_per_pass(torch.zeros(2, 3, 224, 224)) == CPU_MIN_IMAGES == 8
    assert images_per_pass(torch.zeros(1, 3, 1024, 1024)) == CPU_MIN_IMAGES
