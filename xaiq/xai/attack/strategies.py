"""Pixel-selection strategies: which pixels the attack may change (docs/architecture.md).

Each returns a boolean mask ``[N, H, W]``. The budget is ``b = floor(frac * H * W)`` pixels;
a chosen pixel may change in every channel.

- ``least:METHOD``: the ``b`` pixels with the lowest map of the explainer ``METHOD`` for the
  attack's goal class; ``most:METHOD`` the ``b`` highest. Ties among equal map values are
  broken in a seeded random order per sample (:func:`xaiq.xai.ties.rank`), never by pixel
  index (``ties="index"``: lower flat index first, the source lab's rule). Any
  registered explainer (:data:`xaiq.xai.explainers.EXPLAINERS`) can guide the attack.
  ``rise-least`` and ``rise-most`` are the names of ``least:rise`` and ``most:rise`` (the
  source lab's procedure), kept as the canonical spelling: ``least:rise`` is stored as
  ``rise-least``.
- ``central``: a centred region of exactly ``b`` pixels: the centred
  ``floor(H sqrt(frac)) x floor(W sqrt(frac))`` rectangle topped up with the pixels nearest
  the image centre (squared distance, then lower flat index: deterministic);
  ``central="rect"`` is the source lab's rectangle alone (at most ``b`` pixels);
- ``random``: ``b`` pixels drawn per sample from ``(seed, sample id)`` (counter-based).
  ``central`` and ``random`` need no map: they are the controls.

:func:`choose_pixels` also returns, per sample, how many of the chosen pixels the tie rule
decided (:func:`xaiq.xai.ties.tied_in_top`; for ``central`` the top-up pixels chosen among
equidistant ones; 0 for ``random``).
:func:`noise_streams` gives the noise stream of each strategy: with ``noise="common"`` (the
default) every strategy draws the same values for the same sample and iteration (common
random numbers), so a comparison differs only in where the pixels are; ``noise="strategy"``
gives each its own stream (the behaviour before common noise, kept for ``preset="seed"``).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import torch

from xaiq.xai.attack.params import CENTRAL, NOISE
from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.noise import uniform_bits
from xaiq.xai.ties import rank, tied_in_top

_STREAM_RANDOM_PIXELS = 0x4154_0005
COMMON_STREAM = 0x4154_0010  # the noise stream every strategy shares with noise="common"
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


def noise_streams(strategies: list[Strategy], noise: str = "common") -> list[int]:
    """The noise stream of each strategy: one shared stream with ``noise="common"`` (common
    random numbers), each strategy's own with ``noise="strategy"``."""
    if noise not in NOISE:
        raise InvalidParameterError(f"attack: noise={noise!r}; known: {', '.join(NOISE)}")
    return [COMMON_STREAM if noise == "common" else st.stream for st in strategies]


def _from_order(order: torch.Tensor, b: int, shape: tuple[int, int, int]) -> torch.Tensor:
    mask = torch.zeros(shape[0], shape[1] * shape[2], dtype=torch.bool, device=order.device)
    mask.scatter_(1, order[:, :b], True)
    return mask.view(shape)


def central_region(
    frac: float, height: int, width: int, *, exact: bool = True, device: torch.device | None = None
) -> tuple[torch.Tensor, int]:
    """The ``central`` pixels ``[H, W]`` (bool) and how many of them were chosen among
    equidistant ones. ``exact``: exactly ``b = floor(frac H W)`` pixels (the centred
    ``floor(H sqrt(frac)) x floor(W sqrt(frac))`` rectangle, then the pixels nearest the
    centre ``((H-1)/2, (W-1)/2)`` by squared distance, ties by lower flat index); otherwise
    the rectangle alone (the source lab's region, at most ``b`` pixels)."""
    b = budget(frac, height, width)
    rh, rw = math.floor(height * math.sqrt(frac)), math.floor(width * math.sqrt(frac))
    top, left = (height - rh) // 2, (width - rw) // 2
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    mask[top : top + rh, left : left + rw] = True
    extra = b - rh * rw  # >= 0: floor(a) * floor(c) <= a * c = frac H W, an integer <= b
    if not exact or extra <= 0:
        return mask, 0
    ys = torch.arange(height, dtype=torch.float64, device=device)[:, None]
    xs = torch.arange(width, dtype=torch.float64, device=device)[None, :]
    dist = (2 * ys - (height - 1)) ** 2 + (2 * xs - (width - 1)) ** 2  # 4x squared distance
    dist = dist.masked_fill(mask, -1.0).reshape(1, -1)  # the rectangle ranks first
    order = rank(dist, ties="index")
    tied = int(tied_in_top(dist, order, rh * rw + extra)[0])
    mask.view(-1)[order[0, : rh * rw + extra]] = True
    return mask, tied


def select_pixels(
    strategy: str,
    frac: float,
    shape: tuple[int, int, int],
    *,
    saliency: torch.Tensor | None = None,
    seed: int = 0,
    sample_ids: torch.Tensor | None = None,
    device: torch.device | None = None,
    ties: str = "random",
    central: str = "exact",
) -> torch.Tensor:
    """Boolean masks ``[N, H, W]`` of the pixels ``strategy`` may change: the first result
    of :func:`choose_pixels` (same arguments)."""
    return choose_pixels(
        strategy,
        frac,
        shape,
        saliency=saliency,
        seed=seed,
        sample_ids=sample_ids,
        device=device,
        ties=ties,
        central=central,
    )[0]


def choose_pixels(
    strategy: str,
    frac: float,
    shape: tuple[int, int, int],
    *,
    saliency: torch.Tensor | None = None,
    seed: int = 0,
    sample_ids: torch.Tensor | None = None,
    device: torch.device | None = None,
    ties: str = "random",
    central: str = "exact",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks ``[N, H, W]`` of the pixels ``strategy`` may change, and per sample
    the number of them chosen among ties (int64 ``[N]``, CPU).

    Args:
        strategy: ``least:METHOD``, ``most:METHOD``, ``rise-least``, ``rise-most``,
            ``central`` or ``random``.
        frac: budget fraction in (0, 1].
        shape: ``(N, H, W)``.
        saliency: ``[N, H, W]`` float maps of the guiding explainer (required by the guided
            strategies; NaN is refused).
        seed, sample_ids: per-sample randomness of ``random`` and of the guides' tie order
            (``sample_ids`` int64 ``[N]``, default ``0..N-1``).
        device: where to build the masks (default: the saliency's device, else CPU).
        ties: ``random`` (default: equal map values in a seeded random order per sample),
            ``index`` (lower flat index first) or ``reverse``; see :mod:`xaiq.xai.ties`.
        central: ``exact`` (default: exactly ``b`` pixels) or ``rect`` (the source lab's
            rectangle, at most ``b``); see :func:`central_region`.
    """
    n, h, w = shape
    b = budget(frac, h, w)
    parsed = parse_strategy(strategy)
    if central not in CENTRAL:
        raise InvalidParameterError(f"attack: central={central!r}; known: {', '.join(CENTRAL)}")
    dev = device or (saliency.device if saliency is not None else torch.device("cpu"))
    ids = (sample_ids if sample_ids is not None else torch.arange(n)).to(dev)
    if parsed.guided:
        if saliency is None:
            raise InvalidParameterError(f"attack: strategy {strategy!r} needs a saliency map")
        flat = saliency.reshape(n, h * w).to(dev)
        if bool(torch.isnan(flat).any()):
            raise InvalidParameterError(f"attack: the map guiding {strategy!r} holds NaN")
        try:
            order = rank(
                flat, descending=parsed.order == "most", ties=ties, seed=seed, sample_ids=ids
            )
        except ValueError as exc:
            raise InvalidParameterError(f"attack: {exc}") from None
        return _from_order(order, b, shape), tied_in_top(flat, order, b).cpu()
    if parsed.name == "central":
        region, tied = central_region(frac, h, w, exact=central == "exact", device=dev)
        return region.expand(n, h, w).clone(), torch.full((n,), tied, dtype=torch.int64)
    keys = uniform_bits(seed, ids, h * w, stream=_STREAM_RANDOM_PIXELS)
    order = torch.sort(keys, dim=1, stable=True).indices
    return _from_order(order, b, shape), torch.zeros(n, dtype=torch.int64)
