"""Pixel-selection strategies: which pixels the attack may change (DESIGN.md §5).

Each returns a boolean mask ``[N, H, W]``. The budget is ``b = floor(frac * H * W)`` pixels;
a chosen pixel may change in every channel.

- ``rise-least``: the ``b`` pixels with the lowest RISE saliency (ties: lower flat index);
- ``rise-most``: the ``b`` pixels with the highest saliency (ties: lower flat index);
- ``central``: a centred ``floor(H sqrt(frac)) x floor(W sqrt(frac))`` rectangle (<= b pixels);
- ``random``: ``b`` pixels drawn per sample from ``(seed, sample id)`` (counter-based).
"""

from __future__ import annotations

import math

import torch

from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.noise import uniform_bits

_STREAM_RANDOM_PIXELS = 0x4154_0005
RISE_STRATEGIES = frozenset({"rise-least", "rise-most"})


def budget(frac: float, height: int, width: int) -> int:
    """``floor(frac * H * W)``; refuses a budget of zero pixels."""
    b = math.floor(frac * height * width)
    if b < 1:
        raise InvalidParameterError(
            f"attack: frac={frac} gives a budget of 0 pixels for {height}x{width} images"
        )
    return b


def _from_order(order: torch.Tensor, b: int, shape: tuple[int, int, int]) -> torch.Tensor:
    mask = torch.zeros(shape[0], shape[1] * shape[2], dtype=torch.bool, device=order.device)
    mask.scatter_(1, order[:, :b], True)
    return mask.view(shape)


def select_pixels(
    strategy: str,
    frac: float,
    shape: tuple[int, int, int],
    *,
    saliency: torch.Tensor | None = None,
    seed: int = 0,
    sample_ids: torch.Tensor | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Boolean masks ``[N, H, W]`` of the pixels ``strategy`` may change.

    Args:
        strategy: ``rise-least``, ``rise-most``, ``central`` or ``random``.
        frac: budget fraction in (0, 1].
        shape: ``(N, H, W)``.
        saliency: ``[N, H, W]`` float RISE maps (required by the ``rise-*`` strategies).
        seed, sample_ids: per-sample randomness of ``random`` (``sample_ids`` int64 ``[N]``).
        device: where to build the masks (default: the saliency's device, else CPU).
    """
    n, h, w = shape
    b = budget(frac, h, w)
    dev = device or (saliency.device if saliency is not None else torch.device("cpu"))
    if strategy in RISE_STRATEGIES:
        if saliency is None:
            raise InvalidParameterError(f"attack: strategy {strategy!r} needs a saliency map")
        flat = saliency.reshape(n, h * w).to(dev)
        order = torch.sort(flat, dim=1, descending=strategy == "rise-most", stable=True).indices
        return _from_order(order, b, shape)
    if strategy == "central":
        rh, rw = math.floor(h * math.sqrt(frac)), math.floor(w * math.sqrt(frac))
        top, left = (h - rh) // 2, (w - rw) // 2
        mask = torch.zeros(n, h, w, dtype=torch.bool, device=dev)
        mask[:, top : top + rh, left : left + rw] = True
        return mask
    if strategy == "random":
        ids = sample_ids if sample_ids is not None else torch.arange(n)
        keys = uniform_bits(seed, ids.to(dev), h * w, stream=_STREAM_RANDOM_PIXELS)
        order = torch.sort(keys, dim=1, stable=True).indices
        return _from_order(order, b, shape)
    raise InvalidParameterError(f"attack: unknown strategy {strategy!r}")
