"""Gradient and perturbation explainers, through Captum where Captum has the method.

Every function here has the explainer signature of :mod:`xaiq.xai.explainers.base`:
``images`` ``[N, C, H, W]`` float32 model inputs on the module's device, ``targets`` int64
``[N]``; the result is ``[N, H, W]`` float32 on the same device, the sum over channels of the
per-channel attributions (sign kept). Attributions are of the target class's *logit*
(the module's output), as Captum computes them.

Stochastic methods (``smoothgrad``, ``gradient_shap``) draw each image's noise from its own
CPU generator (:func:`xaiq.xai.seeding.sample_generator` with the job seed and the sample id)
and move it to the device, so an image's map depends neither on the batch it was computed
with nor on the device's random number generator.
"""

from __future__ import annotations

import copy
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from xaiq.xai.explainers.base import Param, register
from xaiq.xai.seeding import sample_generator

# Input elements per forward pass when a method expands the batch (IG steps, noise samples,
# occlusion windows). On CUDA: about 56 ImageNet-sized images or 10,000 digits per pass. On
# the CPU, passes that stay cache-sized are faster (measured: IG on 32 digits with 50 steps
# runs 2.4x faster in passes of 256 digits than in one pass of 1,600; with two worker
# processes sharing the L3 cache, IG on 64 digits with 32 steps ran 1.3x faster in passes of
# 167 digits than of 334), so the CPU budget is about 167 digits. Large images get at least
# CPU_MIN_IMAGES per pass: one-image passes leave the CPU's threads idle (IG on resnet18, one
# photo, 16 steps: 1.36 s in passes of 1 image, 0.91 s in passes of 8, against 0.98 s for one
# forward+backward of all 16 rows).
ELEMENT_BUDGET = 1 << 23
CPU_ELEMENT_BUDGET = 1 << 17
CPU_MIN_IMAGES = 8

IG_METHODS = (
    "gausslegendre",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
)


def _positive(v: float) -> bool:
    return v > 0


def _at_least_one(v: int) -> bool:
    return v >= 1


def _non_negative(v: float) -> bool:
    return v >= 0


def images_per_pass(x: torch.Tensor) -> int:
    """How many images of ``x``'s shape fit in the element budget of ``x``'s device (>= 1;
    on the CPU >= ``CPU_MIN_IMAGES``)."""
    if x.device.type == "cuda":
        return max(1, ELEMENT_BUDGET // max(1, x[0].numel()))
    return max(CPU_MIN_IMAGES, CPU_ELEMENT_BUDGET // max(1, x[0].numel()))


def _sum_channels(attr: torch.Tensor) -> torch.Tensor:
    return attr.detach().sum(dim=1).to(torch.float32)


@contextmanager
def quiet_captum() -> Iterator[None]:
    """Silence Captum's per-call notices (inputs made to require grad, hooks set on ReLUs)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Input Tensor \d+ did not already require")
        warnings.filterwarnings("ignore", message=r"Setting (forward, )?backward hooks")
        yield


def input_gradients(module: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Gradient of each row's target logit w.r.t. its input: ``[M, C, H, W]`` -> same shape.

    Rows are processed in chunks of :func:`images_per_pass` (rows do not interact).
    """
    out = torch.empty_like(x)
    step = images_per_pass(x)
    for start in range(0, x.shape[0], step):
        chunk = x[start : start + step].detach().requires_grad_(True)
        with torch.enable_grad():
            logits = module(chunk)
            picked = logits.gather(1, targets[start : start + step, None]).sum()
            (grad,) = torch.autograd.grad(picked, chunk)
        out[start : start + step] = grad
    return out


# Captum's DeepLift and GuidedBackprop hook activation modules. Two things break those hooks:
# in-place activations, and a module called more than once per forward (torchvision's ResNet
# blocks call ``self.relu`` twice). A private, cached copy of the model fixes both: in-place is
# switched off, and a reused parameterless module becomes one fresh copy per call.
_HOOKABLE: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()
_HOOKABLE_AS_IS: weakref.WeakSet[nn.Module] = weakref.WeakSet()


class _CopyPerCall(nn.Module):
    """Stands in for a reused parameterless module: the i-th call of a forward pass runs the
    i-th copy (the root's pre-hook rewinds the counter before each forward)."""

    def __init__(self, base: nn.Module, n_calls: int) -> None:
        super().__init__()
        self.copies = nn.ModuleList(copy.deepcopy(base) for _ in range(n_calls))
        self.calls = 0

    def forward(self, *args: object, **kwargs: object) -> object:
        module = self.copies[self.calls % len(self.copies)]
        self.calls += 1
        return module(*args, **kwargs)


def _call_counts(module: nn.Module, example: torch.Tensor) -> dict[nn.Module, int]:
    counts: dict[nn.Module, int] = {}
    handles = [
        m.register_forward_hook(lambda mod, _i, _o: counts.__setitem__(mod, counts.get(mod, 0) + 1))
        for m in module.modules()
        if not list(m.children())
    ]
    try:
        with torch.no_grad():
            module(example)
    finally:
        for h in handles:
            h.remove()
    return counts


def hookable(module: nn.Module, example: torch.Tensor) -> nn.Module:
    """``module`` itself when Captum's activation hooks work on it, else a cached deep copy
    without in-place activations and with reused parameterless modules split per call.

    ``example``: one model input ``[1, C, H, W]`` used to trace which modules are reused.
    The copy is made once per module object: models are loaded for inference and not changed
    afterwards; change a module's weights and pass a new module to get a fresh copy.
    """
    if module in _HOOKABLE_AS_IS:
        return module
    cached = _HOOKABLE.get(module)
    if cached is not None:
        return cached
    if isinstance(module, torch.jit.ScriptModule):  # no Python hooks: Captum's error will say so
        return module
    reused = {
        m: n
        for m, n in _call_counts(module, example).items()
        if n > 1 and not any(True for _ in m.parameters())
    }
    if not reused and not any(getattr(m, "inplace", False) for m in module.modules()):
        _HOOKABLE_AS_IS.add(module)
        return module
    clone = copy.deepcopy(module).eval()
    # map the original's reused modules to their counterparts in the clone by name
    names = {id(m): name for name, m in module.named_modules(remove_duplicate=False)}
    wrappers: list[_CopyPerCall] = []
    for original, n_calls in reused.items():
        target = clone.get_submodule(names[id(original)])
        wrapper = _CopyPerCall(target, n_calls)
        wrappers.append(wrapper)
        for name, m in list(clone.named_modules(remove_duplicate=False)):
            if m is target and name:
                parent, _, attr = name.rpartition(".")
                setattr(clone.get_submodule(parent), attr, wrapper)
    for m in clone.modules():
        if getattr(m, "inplace", False):
            m.inplace = False  # type: ignore[assignment]

    def rewind(*_: object) -> None:
        for w in wrappers:
            w.calls = 0

    clone.register_forward_pre_hook(rewind)
    _HOOKABLE[module] = clone
    return clone


@register(
    "integrated_gradients",
    {
        "n_steps": Param(50, int, _at_least_one, ">= 1", "integration steps"),
        # not called "method": explain(method, ...) takes the explainer name under that name
        "integration_method": Param(
            "gausslegendre",
            str,
            lambda v: v in IG_METHODS,
            " | ".join(IG_METHODS),
            "Captum's integration rule (its `method` argument)",
        ),
        "internal_batch_size": Param(
            None,
            int,
            _at_least_one,
            ">= 1",
            "scaled inputs per forward pass, across images (default: a memory budget)",
        ),
    },
)
def integrated_gradients(
    module: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    n_steps: int = 50,
    integration_method: str = "gausslegendre",
    internal_batch_size: int | None = None,
    **_: object,
) -> torch.Tensor:
    """Integrated Gradients from the zero baseline, ``n_steps`` steps: Captum's numbers.

    ``integration_method`` is Captum's ``method`` (default ``gausslegendre``, as Captum); its
    points and weights come from Captum. The ``N * n_steps`` scaled inputs ``alpha_k * x`` of
    all images go through the model ``internal_batch_size`` rows per pass (default: the
    memory budget; whole steps of the batch when the batch fits), one summed backward per
    pass as in :func:`input_gradients` rather than Captum's tuple of per-row outputs (IG on
    32 digits, 50 steps: 0.82 of the forward+backward limit through Captum). The maps equal
    Captum's to float rounding (tested).
    """
    from captum.attr._utils.approximation_methods import approximation_parameters

    weights_of, alphas_of = approximation_parameters(integration_method)
    alphas, weights = alphas_of(n_steps), weights_of(n_steps)
    n = images.shape[0]
    per_pass = internal_batch_size or images_per_pass(images)
    total = torch.zeros_like(images)
    group = min(n, per_pass)  # images per pass; then as many of their steps as fit
    for g0 in range(0, n, group):
        x, t = images[g0 : g0 + group], targets[g0 : g0 + group]
        m = x.shape[0]
        steps = max(1, per_pass // m)
        for k0 in range(0, n_steps, steps):
            ks = range(k0, min(n_steps, k0 + steps))
            shape = (len(ks), 1, 1, 1, 1)
            a = torch.tensor([alphas[k] for k in ks], dtype=x.dtype, device=x.device)
            w = torch.tensor([weights[k] for k in ks], dtype=x.dtype, device=x.device)
            scaled = (a.view(shape) * x).flatten(0, 1).detach().requires_grad_(True)
            with torch.enable_grad():
                logits = module(scaled)
                picked = logits.gather(1, t.repeat(len(ks))[:, None]).sum()
                (grad,) = torch.autograd.grad(picked, scaled)
            total[g0 : g0 + m] += (grad.view(len(ks), *x.shape) * w.view(shape)).sum(0)
    return _sum_channels(total * images)


@register("saliency", {"abs": Param(True, bool, doc="absolute gradient (Captum's default)")})
def saliency(
    module: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, abs: bool = True, **_: object
) -> torch.Tensor:
    """Saliency: the input gradient of the target logit, absolute by default (Captum's numbers).

    Computed by :func:`input_gradients` (memory-budget passes, one summed backward each) rather
    than through Captum's ``Saliency``, which backpropagates the batch's target logits as a
    tuple of scalars: on 512 digits that took 70-80 ms against 55 ms here. The maps equal
    Captum's (tested)."""
    grads = input_gradients(module, images, targets)
    return _sum_channels(grads.abs() if abs else grads)


@register("input_x_gradient")
def input_x_gradient(
    module: nn.Module, images: torch.Tensor, targets: torch.Tensor, **_: object
) -> torch.Tensor:
    """Input times its gradient (Captum)."""
    from captum.attr import InputXGradient

    with quiet_captum():
        return _sum_channels(InputXGradient(module).attribute(images, target=targets))


def _per_sample_noise(
    images: torch.Tensor, n_samples: int, seed: int, sample_ids: list[int], stream: int
) -> torch.Tensor:
    """Standard normal noise ``[N, n_samples, C, H, W]`` on ``images.device``; image ``i``'s
    from its own generator. Drawn on the CPU and moved, so the values are the same on every
    device (a CUDA generator would give other numbers than a CPU one for the same seed)."""
    shape = (n_samples, *images.shape[1:])
    noise = torch.stack(
        [
            torch.randn(shape, generator=sample_generator(seed, sid, "cpu", stream))
            for sid in sample_ids
        ]
    )
    return noise.to(device=images.device, dtype=images.dtype)


def _per_sample_uniform(
    n_samples: int, seed: int, sample_ids: list[int], stream: int, like: torch.Tensor
) -> torch.Tensor:
    """``U(0, 1)`` draws ``[N, n_samples]`` per image (CPU generator, moved to ``like``)."""
    draws = torch.stack(
        [
            torch.rand(n_samples, generator=sample_generator(seed, sid, "cpu", stream))
            for sid in sample_ids
        ]
    )
    return draws.to(device=like.device, dtype=like.dtype)


def noise_scale(images: torch.Tensor, stdev: float) -> torch.Tensor:
    """Per-image noise sigma ``[N, 1, 1, 1]``: ``stdev`` times the image's value range
    (max - min of its model input; 1 for a constant image)."""
    flat = images.reshape(images.shape[0], -1)
    span = flat.max(dim=1).values - flat.min(dim=1).values
    span = torch.where(span > 0, span, torch.ones_like(span))
    return (stdev * span).view(-1, 1, 1, 1)


@register(
    "smoothgrad",
    {
        "n_samples": Param(25, int, _at_least_one, ">= 1", "noisy copies per image"),
        "stdev": Param(0.15, float, _non_negative, ">= 0", "noise sigma / image value range"),
        "abs": Param(True, bool, doc="average |gradient| (Captum's NoiseTunnel(Saliency))"),
    },
    stochastic=True,
)
def smoothgrad(
    module: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    seed: int = 0,
    sample_ids: list[int] | None = None,
    n_samples: int = 25,
    stdev: float = 0.15,
    abs: bool = True,
    **_: object,
) -> torch.Tensor:
    """SmoothGrad: Saliency averaged over ``n_samples`` Gaussian-noised copies of each image.

    Noise sigma is ``stdev`` times each image's value range (Smilkov et al.'s noise level);
    the noise of image ``i`` comes from ``sample_generator(seed, sample_ids[i], "cpu",
    stream=1)`` (CPU draws moved to the device: the same noise on every device).
    """
    n = images.shape[0]
    ids = sample_ids if sample_ids is not None else list(range(n))
    noise = _per_sample_noise(images, n_samples, seed, ids, stream=1)
    noisy = images[:, None] + noise * noise_scale(images, stdev)[:, None]
    flat = noisy.reshape(n * n_samples, *images.shape[1:])
    grads = input_gradients(module, flat, targets.repeat_interleave(n_samples))
    if abs:
        grads = grads.abs()
    return _sum_channels(grads.reshape(n, n_samples, *images.shape[1:]).mean(dim=1))


@register(
    "gradient_shap",
    {
        "n_samples": Param(20, int, _at_least_one, ">= 1", "random points per image"),
        "stdev": Param(0.0, float, _non_negative, ">= 0", "input noise sigma / image value range"),
    },
    stochastic=True,
)
def gradient_shap(
    module: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    seed: int = 0,
    sample_ids: list[int] | None = None,
    n_samples: int = 20,
    stdev: float = 0.0,
    **_: object,
) -> torch.Tensor:
    """GradientSHAP with the zero baseline, computed as Captum does with per-sample streams.

    For each of ``n_samples`` draws: ``x' = x + noise`` (sigma = ``stdev`` times the image's
    value range), ``alpha ~ U(0, 1)``, gradient at ``alpha * x'`` times ``x'``; the map is the
    mean over draws. (Captum's ``GradientShap`` draws from the global RNG, so it is re-done
    here with each image's own generator; with one baseline this is exactly its estimator.)
    """
    n = images.shape[0]
    ids = sample_ids if sample_ids is not None else list(range(n))
    shape = images.shape[1:]
    noise = _per_sample_noise(images, n_samples, seed, ids, stream=2)
    alphas = _per_sample_uniform(n_samples, seed, ids, 3, images).view(n, n_samples, 1, 1, 1)
    shifted = images[:, None] + noise * noise_scale(images, stdev)[:, None]
    points = (alphas * shifted).reshape(n * n_samples, *shape)
    grads = input_gradients(module, points, targets.repeat_interleave(n_samples))
    attr = (grads.reshape(n, n_samples, *shape) * shifted).mean(dim=1)
    return _sum_channels(attr)


@register("deeplift")
def deeplift(
    module: nn.Module, images: torch.Tensor, targets: torch.Tensor, **_: object
) -> torch.Tensor:
    """DeepLIFT (rescale rule) from the zero baseline (Captum)."""
    from captum.attr import DeepLift

    with quiet_captum():
        attr = DeepLift(hookable(module, images[:1])).attribute(
            images, baselines=torch.zeros_like(images), target=targets
        )
    return _sum_channels(attr)


@register("guided_backprop")
def guided_backprop(
    module: nn.Module, images: torch.Tensor, targets: torch.Tensor, **_: object
) -> torch.Tensor:
    """Guided Backpropagation (Captum): only positive gradients pass back through ReLUs."""
    from captum.attr import GuidedBackprop

    with quiet_captum():
        attr = GuidedBackprop(hookable(module, images[:1])).attribute(images, target=targets)
    return _sum_channels(attr)


def occlusion_window(height: int, width: int) -> tuple[int, int]:
    """Default occlusion (window, stride): window ~ 1/8 of the shorter side, stride half of it
    (28 -> 4 and 2; 224 -> 28 and 14)."""
    window = max(1, round(min(height, width) / 8))
    return window, max(1, window // 2)


@register(
    "occlusion",
    {
        "window": Param(None, int, _at_least_one, ">= 1", "square window side (default ~H/8)"),
        "stride": Param(None, int, _at_least_one, ">= 1", "window step (default window/2)"),
        "perturbations_per_eval": Param(
            None, int, _at_least_one, ">= 1", "occluded copies per forward pass (default: budget)"
        ),
    },
)
def occlusion(
    module: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    window: int | None = None,
    stride: int | None = None,
    perturbations_per_eval: int | None = None,
    **_: object,
) -> torch.Tensor:
    """Occlusion (Captum): logit drop when a square window of all channels is set to 0."""
    from captum.attr import Occlusion

    c, h, w = images.shape[1:]
    window = min(window or occlusion_window(h, w)[0], h, w)
    stride = stride or max(1, window // 2)
    if perturbations_per_eval is None:
        perturbations_per_eval = max(1, images_per_pass(images) // images.shape[0])
    with quiet_captum():
        attr = Occlusion(module).attribute(
            images,
            sliding_window_shapes=(c, window, window),
            strides=(c, stride, stride),
            baselines=0.0,
            target=targets,
            perturbations_per_eval=perturbations_per_eval,
        )
    return _sum_channels(attr)


CAPTUM_BACKED: dict[str, Callable[..., torch.Tensor]] = {
    "integrated_gradients": integrated_gradients,
    "saliency": saliency,
    "input_x_gradient": input_x_gradient,
    "deeplift": deeplift,
    "guided_backprop": guided_backprop,
    "occlusion": occlusion,
}
"""Explainers that call a Captum class directly (tests compare them with Captum)."""
