"""Models and inputs shared by the bench modules (no downloads: bundled or random weights)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from bench.harness import Context, Skip

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from bench.baselines.limits import BestBatch


def require(module: str, *names: str) -> Any:
    """Import ``module`` and check it defines ``names``; :class:`Skip` with the reason if not."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise Skip(f"{module} not available ({exc})") from None
    missing = [n for n in names if not hasattr(mod, n)]
    if missing:
        raise Skip(f"{module} has no {', '.join(missing)} yet")
    return mod


def require_explainer(method: str) -> None:
    from xaiq.xai.explainers import EXPLAINERS

    if method not in EXPLAINERS:
        raise Skip(f"explainer {method!r} not registered yet")


def digits_model(ctx: Context, name: str = "digits-cnn") -> nn.Module:
    from xaiq.xai.models import load_model

    return ctx.prepare_module(load_model(name, device=ctx.device).module)


def digits_inputs(ctx: Context, n: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The first ``n`` digits (cycled) as model inputs ``[n, 1, 28, 28]``, labels, images."""
    from xaiq.xai.digits import digits_arrays, to_model_input

    images, labels = digits_arrays()
    idx = np.arange(n) % len(labels)
    x = to_model_input(images[idx])
    return ctx.prepare_input(x), torch.from_numpy(labels[idx]).to(ctx.device), images[idx]


def resnet18_random(ctx: Context) -> nn.Module:
    """torchvision's resnet18 with seeded random weights (no download), eval mode."""
    import torchvision

    torch.manual_seed(0)
    return ctx.prepare_module(torchvision.models.resnet18(weights=None))


def photo_inputs(ctx: Context, n: int, size: int = 224) -> tuple[torch.Tensor, np.ndarray]:
    """skimage's sample photos (cycled) resized to ``size``: ImageNet-normalised model inputs
    ``[n, 3, size, size]`` and the display images ``[n, size, size, 3]`` in [0, 1]."""
    from skimage import data
    from skimage.transform import resize

    photos = [
        data.astronaut(),
        data.chelsea(),
        data.coffee(),
        data.rocket(),
        data.immunohistochemistry(),
    ]
    shown = np.stack(
        [resize(photos[i % len(photos)], (size, size), anti_aliasing=True) for i in range(n)]
    ).astype(np.float32)
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    x = torch.from_numpy(((shown - mean) / std).transpose(0, 3, 1, 2).copy())
    return ctx.prepare_input(x), shown


class TinyNet224(nn.Module):
    """A cheap 3x224x224 classifier (stride-8 conv, pooling, linear): for memory rows, where
    the RISE machinery, not the network, should dominate."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=8, stride=8)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(8 * 16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


def best_limit(
    ctx: Context, make: Callable[[int], Callable[[], None]], rows: int, also: Sequence[int] = ()
) -> BestBatch:
    """A limit at its fastest batch size: ``make(b)`` over the sweep of
    :func:`bench.baselines.limits.sweep_sizes` for ``rows`` rows (plus ``also``, e.g. the
    library's own batch), logged; the row then times the library against ``.call``."""
    from bench.baselines.limits import fastest_batch, sweep_sizes

    def under_autocast(b: int) -> Callable[[], None]:
        call = make(b)

        def run() -> None:
            with ctx.autocast():  # as the library is timed (bf16 on CUDA with --amp)
                call()

        return run

    sizes = sweep_sizes(rows, also, quick=ctx.quick)
    best = fastest_batch(
        under_autocast, sizes, reps=ctx.pick(1, 2), sync=ctx.sync, warm_each=not ctx.quick
    )
    table = ", ".join(f"{b}: {t * 1000:.0f} ms" for b, t in sorted(best.seconds.items()))
    ctx.log(f"{ctx.module}: limit by batch size {table} -> {best.size}")
    return best
