"""Model-randomisation sanity check (Adebayo et al., 2018, "Sanity checks for saliency maps").

The layers with their own parameters (convolutions, linear layers, norms: leaf modules that
own a parameter), taken from the logits down, are re-initialised:

- ``cascading`` (the paper's main test): step ``i`` randomises the top ``i`` layers, so the
  last step is a fully random network;
- ``independent``: step ``i`` randomises layer ``i`` alone, the others keep their weights.

Re-initialisation draws every parameter of a layer from ``U(-b, b)`` with
``b = 1 / sqrt(fan_in)`` of the layer's weight (PyTorch's default for convolutions and linear
layers; a layer with no multi-dimensional weight uses ``b = 1``), from a CPU generator seeded by
``(seed, layer position)``: the same seed gives the same random network on any device.

A method whose map survives randomisation (stays rank-correlated with the trained model's
map) does not depend on what the model learned and fails the check. :func:`compare_maps`
gives the paper's similarity measures per image.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn

from xaiq.xai.errors import InvalidParameterError

MODES = ("cascading", "independent")


@dataclass(frozen=True)
class RandomisedModel:
    """One step of the check: ``layer`` is the layer randomised at this step, ``order`` its
    position from the logits (1 = the output layer), ``module`` the randomised copy."""

    layer: str
    order: int
    module: nn.Module


def parametrised_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaf modules owning a parameter, ``(qualified name, module)``, from the logits down
    (the reverse of registration order, which is forward order for sequential models)."""
    layers = [
        (name, m)
        for name, m in module.named_modules()
        if name and not list(m.children()) and any(True for _ in m.parameters(recurse=False))
    ]
    return layers[::-1]


def _reinitialise(layer: nn.Module, seed: int, order: int) -> None:
    gen = torch.Generator().manual_seed((int(seed) * 1_000_003 + order) % (1 << 63))
    weight = getattr(layer, "weight", None)
    fan_in = weight[0].numel() if isinstance(weight, torch.Tensor) and weight.dim() >= 2 else 0
    bound = 1.0 / math.sqrt(fan_in) if fan_in else 1.0
    with torch.no_grad():
        for _, p in sorted(layer.named_parameters(recurse=False)):
            fresh = (torch.rand(p.shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
            p.copy_(fresh.to(dtype=p.dtype, device=p.device))


def randomised_models(
    module: nn.Module,
    *,
    mode: str = "cascading",
    seed: int = 0,
    max_layers: int | None = None,
) -> Iterator[RandomisedModel]:
    """The randomised networks of the check, top layer first (module docstring).

    ``module`` itself is never changed (a deep copy is randomised). ``max_layers``: stop after
    that many layers (default: all). In ``cascading`` mode one copy is randomised further at
    every step: use each yielded module before asking for the next.
    """
    if mode not in MODES:
        raise InvalidParameterError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if max_layers is not None and (isinstance(max_layers, bool) or int(max_layers) < 1):
        raise InvalidParameterError(f"max_layers must be >= 1, got {max_layers!r}")
    names = [name for name, _ in parametrised_layers(module)]
    if not names:
        raise InvalidParameterError("the model has no layer with parameters to randomise")
    names = names[: max_layers or len(names)]
    cascade = copy.deepcopy(module).eval() if mode == "cascading" else None
    for order, name in enumerate(names, start=1):
        target = cascade if cascade is not None else copy.deepcopy(module).eval()
        _reinitialise(target.get_submodule(name), seed, order)
        yield RandomisedModel(name, order, target)


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    ra, rb = stats.rankdata(a), stats.rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return None if den == 0.0 else float(np.clip(float(ra @ rb) / den, -1.0, 1.0))


def _ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    from skimage.metrics import structural_similarity

    ma, mb = float(a.max()), float(b.max())
    if ma == 0.0 or mb == 0.0 or min(a.shape) < 3:
        return None
    win = min(7, min(a.shape) if min(a.shape) % 2 else min(a.shape) - 1)
    return float(structural_similarity(a / ma, b / mb, data_range=1.0, win_size=win))


def compare_maps(trained: Any, randomised: Any) -> list[dict[str, float | None]]:
    """Per image of ``[N, H, W]`` maps (tensor or numpy): ``spearman_abs`` (Spearman rank
    correlation of ``|map|`` over pixels), ``spearman_signed`` (of the signed maps) and
    ``ssim`` (scikit-image SSIM of ``|map| / max |map|``, data range 1, the paper's
    normalisation). ``None`` where undefined (a constant map; a zero map for SSIM)."""
    a = np.asarray(trained.detach().cpu() if hasattr(trained, "detach") else trained, np.float64)
    b = np.asarray(
        randomised.detach().cpu() if hasattr(randomised, "detach") else randomised, np.float64
    )
    if a.ndim != 3 or a.shape != b.shape:
        raise InvalidParameterError(f"maps must both be [N, H, W], got {a.shape} and {b.shape}")
    out = []
    for x, y in zip(a, b, strict=True):
        out.append(
            {
                "spearman_abs": _spearman(np.abs(x).ravel(), np.abs(y).ravel()),
                "spearman_signed": _spearman(x.ravel(), y.ravel()),
                "ssim": _ssim(np.abs(x), np.abs(y)),
            }
        )
    return out
