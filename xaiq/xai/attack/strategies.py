"""Pixel-selection strategies: which pixels the attack may change (docs/architecture.md).

Each returns a boolean mask ``[N, H, W]``. The budget is ``b = floor(frac * H * W)`` pixels;
a chosen pixel may change in every channel.

- ``least:METHOD``: the ``b`` pixels with the lowest map of the explainer ``METHOD`` for the
  attack's goal class (ties: lower flat index); ``most:METHOD`` the ``b`` highest. Any
  registered explainer (:data:`xaiq.xai.explainers.EXPLAINERS`) can guide the attack.
  ``rise-least`` and ``rise-most`` are the names of ``least:rise`` and ``most:rise`` (the
  source lab's procedure), kept as the canonical spelling: ``least:rise`` is stored as
  ``rise-least``.
- ``central``: a centred ``floor(H sqrt(frac)) x floor(W sqrt(frac))`` rectangle (<= b pixels);
- ``random``: ``b`` pixels drawn per sample from ``(seed, sample id)`` (counter-based).
  ``central`` and ``random`` need no map: they are the controls.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import torch

from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.noise import uniform_bits

_STREAM_RANDOM_PIXELS = 0x4154_0005
ALIASES = {"least:rise": "rise-least", "most:rise": "rise-most"}
_RISE_NAMES = {"rise-least": ("least", "rise"), "rise-most": ("most", "rise")}
# Noise streams of the original four (kept: their results do not change); a guided
# strategy's stream is a hash of its name above 2**32, so it never meets these.
_FIXED_STREAMS = {"rise-least": 1, "rise-most": 2, "central": 3, "random": 4}
CONTROLS = ("central", "random")
MAX_NAME = 32  # the width of the ``strategy`` column


@dataclass(frozen=True)
class Strategy:
    """A parsed strategy: ``name`` (canonical), ``order`` (``least``/``most``, or None for a
    control), ``method`` (the guiding explainer, or None), ``stream`` (its noise stream)."""

    name: str
    order: str | None
    method: str | None
    stream: int

    @property
    def guided(self) -> bool:
        return self.method is not None


def parse_strategy(name: str) -> Strategy:
    """``least:METHOD`` / ``most:METHOD`` / ``rise-least`` / ``rise-most`` / ``central`` /
    ``random`` -> :class:`Strategy`; an unknown method or form is refused naming the known."""
    from xaiq.xai.explainers import EXPLAINERS

    raw = name.strip()
    canonical = ALIASES.get(raw, raw)
    if canonical in CONTROLS:
        return Strategy(canonical, None, None, _FIXED_STREAMS[canonical])
    if canonical in _RISE_NAMES:
        order, method = _RISE_NAMES[canonical]
        return Strategy(canonical, order, method, _FIXED_STREAMS[canonical])
    order, sep, method = canonical.partition(":")
    if not sep or order not in ("least", "most") or not method:
        raise InvalidParameterError(
            f"attack: unknown strategy {raw!r}; known: least:METHOD, most:METHOD "
            f"(METHOD one of {', '.join(EXPLAINERS.names())}), rise-least, rise-most, "
            "central, random"
        )
    if method not in EXPLAINERS:
        raise InvalidParameterError(
            f"attack: strategy {raw!r}: {EXPLAINERS.unknown_message(method)}"
        )
    if len(canonical) > MAX_NAME:
        raise InvalidParameterError(f"attack: strategy name {raw!r} is over {MAX_NAME} characters")
    stream = (1 << 32) | zlib.crc32(canonical.encode())
    return Strategy(canonical, order, method, stream)


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
        strategy: ``least:METHOD``, ``most:METHOD``, ``rise-least``, ``rise-most``,
            ``central`` or ``random``.
        frac: budget fraction in (0, 1].
        shape: ``(N, H, W)``.
        saliency: ``[N, H, W]`` float maps of the guiding explainer (required by the guided
            strategies; NaN is refused).
        seed, sample_ids: per-sample randomness of ``random`` (``sample_ids`` int64 ``[N]``).
        device: where to build the masks (default: the saliency's device, else CPU).
    """
    n, h, w = shape
    b = budget(frac, h, w)
    parsed = parse_strategy(strategy)
    dev = device or (saliency.device if saliency is not None else torch.device("cpu"))
    if parsed.guided:
        if saliency is None:
            raise InvalidParameterError(f"attack: strategy {strategy!r} needs a saliency map")
        flat = saliency.reshape(n, h * w).to(dev)
        if bool(torch.isnan(flat).any()):
            raise InvalidParameterError(f"attack: the map guiding {strategy!r} holds NaN")
        order = torch.sort(flat, dim=1, descending=parsed.order == "most", stable=True).indices
        return _from_order(order, b, shape)
    if parsed.name == "central":
        rh, rw = math.floor(h * math.sqrt(frac)), math.floor(w * math.sqrt(frac))
        top, left = (h - rh) // 2, (w - rw) // 2
        mask = torch.zeros(n, h, w, dtype=torch.bool, device=dev)
        mask[:, top : top + rh, left : left + rw] = True
        return mask
    ids = sample_ids if sample_ids is not None else torch.arange(n)
    keys = uniform_bits(seed, ids.to(dev), h * w, stream=_STREAM_RANDOM_PIXELS)
    order = torch.sort(keys, dim=1, stable=True).indices
    return _from_order(order, b, shape)
