"""Deletion and insertion: the causal metrics of the RISE paper (Petsiuk et al. 2018), by
default exactly the authors' reference protocol (docs/faithfulness.md).

For one image ``x``, its map ``m`` and the explained class ``t``: order the pixels by
decreasing attribution (the signed value, as the reference does; ``order="abs"`` orders by
``|m|``; equal values in the ``ties`` rule's order, by default a seeded random order per
sample: :mod:`xaiq.xai.faith_orders`), then play two games of
``n_steps = ceil(H * W / step)`` steps:

- **deletion** starts from ``x`` and, at step ``i``, has the first ``i * step`` pixels of the
  order replaced by the substrate (default ``baseline``: zeros, the model-input baseline;
  every channel of a chosen pixel is replaced; ``road``: ROAD's noisy linear imputation of
  the removed pixels, :mod:`xaiq.xai.road`);
- **insertion** starts from a blurred copy of ``x`` (per channel, zero padding; by default
  the reference kernel, ``kernel="sampled"`` the normalised sampled Gaussian) and puts the
  original pixels back in that order.

At every step ``i = 0 .. n_steps`` (the first and the last included) the curve records
``softmax(f(x_i))_t``, and ``AUC = (sum - first / 2 - last / 2) / n_steps`` (the trapezoid
rule on ``[0, 1]``). A faithful map has a low deletion AUC and a high insertion AUC.
``first="least"`` plays the least-relevant-first (LeRF) games: the same order backwards.

:func:`faithfulness_games` plays, in the same forward batches, the most-relevant-first
games, the LeRF games and the random-order baseline (the units in a seeded random order per
sample, ignoring the map), so every AUC can be read against chance.

:func:`superpixel_deletion_insertion` plays the same games over superpixels: whole
superpixels are removed (or put back) ``step`` at a time (default 1) in the order of their mean
attribution.

Batching: the step images of every image and game are one flat list; it is cut into
forward batches of ``batch_size`` images made on the fly (image ``j`` at step ``i`` is
``where(rank_j < i * step, finish_j, start_j)``), so memory does not grow with the number of
steps and several images share a forward when their games are short.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from xaiq.xai.device import module_device
from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.faith_orders import (
    KERNELS,
    MAX_BLUR_KERNEL,
    MAX_BLUR_SIGMA,
    TIES,
    blur,
    blur_kernel_of,
    check_ties,
    gaussian_kernel,
    reference_kernel,
    superpixel_units,
    unit_ranks,
)
from xaiq.xai.faith_play import play_games
from xaiq.xai.rise import default_batch_size
from xaiq.xai.road import ROAD_NOISE, ROAD_TOL, check_road_params

MAX_STEP = 4096 * 4096  # pixels per step (a documented maximum): the largest image's area

__all__ = [
    "FIRST",
    "MAX_BLUR_KERNEL",
    "MAX_BLUR_SIGMA",
    "MAX_STEP",
    "KERNELS",
    "ORDERS",
    "SUBSTRATES",
    "TIES",
    "DeletionInsertion",
    "FaithfulnessGames",
    "blur",
    "check_faithfulness_params",
    "deletion_insertion",
    "faithfulness_games",
    "gaussian_kernel",
    "reference_kernel",
    "superpixel_deletion_insertion",
]

ORDERS = ("signed", "abs")
FIRST = ("most", "least")
SUBSTRATES = ("baseline", "blur", "mean", "road")
"""Deletion substrates: zeros, the blurred copy, each channel's mean, ROAD's imputation."""


@dataclass(frozen=True)
class DeletionInsertion:
    """Curves and AUCs of ``N`` images (tensors on the CPU, float64).

    ``deletion``, ``insertion``: ``[N, T]`` probabilities of the explained class at steps
    ``0 .. n_steps[j]``; an image with fewer steps than ``T - 1`` (superpixels) is padded with
    NaN. ``deletion_auc``, ``insertion_auc``: ``[N]``. ``n_steps``: ``[N]`` int64.
    ``step``: units (pixels or superpixels) changed per step.
    """

    deletion: torch.Tensor
    insertion: torch.Tensor
    deletion_auc: torch.Tensor
    insertion_auc: torch.Tensor
    n_steps: torch.Tensor
    step: int

    def curves(self, i: int) -> np.ndarray:
        """``[2, n_steps + 1]`` float64 (deletion, insertion) of image ``i``."""
        k = int(self.n_steps[i]) + 1
        return torch.stack((self.deletion[i, :k], self.insertion[i, :k])).numpy()


@dataclass(frozen=True)
class FaithfulnessGames:
    """The games of :func:`faithfulness_games`: ``morf`` (most relevant first), ``lerf``
    (least relevant first; None when not asked) and ``random`` (the random-order baseline;
    None when not asked). ``tied``: ``[N]`` float64, the share of units whose attribution
    equals another unit's (ordered by the tie rule)."""

    morf: DeletionInsertion
    lerf: DeletionInsertion | None
    random: DeletionInsertion | None
    tied: torch.Tensor


def check_faithfulness_params(
    substrate: str,
    order: str,
    step: int | None,
    blur_kernel: int,
    blur_sigma: float,
    kernel: str = "reference",
    ties: str = "random",
    first: str = "most",
    road_noise: float = ROAD_NOISE,
) -> None:
    """Raise :class:`InvalidParameterError` naming the first bad value."""
    if substrate not in SUBSTRATES:
        known = ", ".join(SUBSTRATES)
        raise InvalidParameterError(f"substrate must be one of {known}, got {substrate!r}")
    if order not in ORDERS:
        raise InvalidParameterError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    if first not in FIRST:
        raise InvalidParameterError(f"first must be one of {', '.join(FIRST)}, got {first!r}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 1):
        raise InvalidParameterError(f"step must be an integer >= 1, got {step!r}")
    if step is not None and step > MAX_STEP:
        raise InvalidParameterError(f"step={step!r} is above its maximum {MAX_STEP}")
    check_ties(ties)
    check_road_params(road_noise, ROAD_TOL)
    blur_kernel_of(kernel, blur_kernel, blur_sigma)


def _check_inputs(
    model: nn.Module, images: torch.Tensor, maps: Any, targets: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    device = module_device(model)
    x = images.to(device=device, dtype=torch.float32)
    if x.ndim != 4:
        raise InvalidParameterError(f"images must be [N, C, H, W], got {tuple(x.shape)}")
    n, _, h, w = x.shape
    m = torch.as_tensor(maps).to(device=device, dtype=torch.float32)
    if tuple(m.shape) != (n, h, w):
        raise InvalidParameterError(f"maps must be [{n}, {h}, {w}], got {tuple(m.shape)}")
    if not bool(torch.isfinite(m).all()):
        raise InvalidParameterError("maps have non-finite values (NaN or inf)")
    if not bool(torch.isfinite(x).all()):
        raise InvalidParameterError("images have non-finite values (NaN or inf)")
    t = torch.as_tensor(targets, dtype=torch.long, device=device).reshape(-1)
    if t.numel() == 1 and n != 1:
        t = t.expand(n)
    if t.numel() != n:
        raise InvalidParameterError(f"targets must have {n} entries, got {t.numel()}")
    return x, m, t


def _sample_ids(sample_ids: Any, n: int) -> torch.Tensor:
    if sample_ids is None:
        return torch.arange(n, dtype=torch.int64)
    ids = torch.as_tensor(sample_ids, dtype=torch.int64).reshape(-1).cpu()
    if ids.numel() != n or bool((ids < 0).any()):
        raise InvalidParameterError(f"sample_ids must be {n} non-negative ints")
    return ids


def _module(model: Any) -> nn.Module:
    return model.module if hasattr(model, "module") and hasattr(model, "preprocess") else model


def _assemble(
    probs: torch.Tensor, lengths: list[int], n: int, step: int, sets: int
) -> list[DeletionInsertion]:
    """``sets`` x (deletion games, insertion games) of ``n`` images each, concatenated, as
    NaN-padded rows and AUCs."""
    p = probs.double().cpu()
    sizes = torch.tensor(lengths, dtype=torch.int64)
    game_of = torch.repeat_interleave(torch.arange(len(lengths)), sizes)
    first = torch.cumsum(sizes, 0) - sizes
    out = torch.full((len(lengths), int(sizes.max())), float("nan"), dtype=torch.float64)
    out[game_of, torch.arange(p.numel()) - first[game_of]] = p
    sums = torch.zeros(len(lengths), dtype=torch.float64).index_add_(0, game_of, p)
    aucs = (sums - p[first] / 2 - p[first + sizes - 1] / 2) / (sizes - 1)
    results = []
    for k in range(sets):
        d, i = slice(2 * k * n, (2 * k + 1) * n), slice((2 * k + 1) * n, (2 * k + 2) * n)
        results.append(DeletionInsertion(out[d], out[i], aucs[d], aucs[i], sizes[d] - 1, step))
    return results


@dataclass(frozen=True)
class _Protocol:
    step: int
    substrate: str
    blur_kernel: int
    blur_sigma: float
    kernel: str
    seed: int
    road_noise: float
    batch_size: int | None


def _games(
    module: nn.Module,
    x: torch.Tensor,
    t: torch.Tensor,
    rank_sets: list[torch.Tensor],
    n_steps: torch.Tensor,
    ids: torch.Tensor,
    proto: _Protocol,
) -> list[DeletionInsertion]:
    bs_in = proto.batch_size
    if bs_in is not None and (isinstance(bs_in, bool) or int(bs_in) < 1):
        raise InvalidParameterError(f"batch_size must be >= 1, got {bs_in!r}")
    bs = int(bs_in) if bs_in is not None else default_batch_size(x.shape[1:], x.device)
    n, step = x.shape[0], proto.step
    if n == 0:
        empty = torch.zeros(0, 1, dtype=torch.float64)
        none = torch.zeros(0, dtype=torch.float64)
        return [DeletionInsertion(empty, empty, none, none, none.long(), step)] * len(rank_sets)
    blurred = blur(x, proto.blur_kernel, proto.blur_sigma, proto.kernel)
    if proto.substrate == "baseline":
        sub = torch.zeros_like(x)
    elif proto.substrate == "blur":
        sub = blurred
    elif proto.substrate == "mean":
        sub = x.mean(dim=(2, 3), keepdim=True).expand_as(x).contiguous()
    else:  # road: the step images are imputed; the finish shows x until then
        sub = x
    sets = len(rank_sets)
    road = proto.substrate == "road"
    probs, lengths = play_games(
        module,
        torch.cat([torch.cat((x, blurred))] * sets),  # deletion from x, insertion from blur
        torch.cat([torch.cat((sub, x))] * sets),
        torch.cat([torch.cat((r, r)) for r in rank_sets]),
        torch.cat([n_steps] * 2 * sets),
        step,
        torch.cat([t] * 2 * sets),
        bs,
        impute=[road and g % (2 * n) < n for g in range(2 * n * sets)],
        sample_ids=torch.cat([ids] * 2 * sets),
        seed=proto.seed,
        road_noise=proto.road_noise,
    )
    return _assemble(probs, lengths, n, step, sets)


def _pixel_setup(
    model: Any, images: Any, maps: Any, targets: Any, order: str
) -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    module = _module(model)
    x, m, t = _check_inputs(module, images, maps, targets)
    n, _, h, w = x.shape
    scores = m.reshape(n, h * w)
    return module, x, t, (scores.abs() if order == "abs" else scores), m


def faithfulness_games(
    model: Any,
    images: torch.Tensor,
    maps: Any,
    targets: torch.Tensor | Sequence[int] | int,
    *,
    labels: Any = None,
    step: int | None = None,
    substrate: str = "baseline",
    blur_kernel: int = 11,
    blur_sigma: float = 5.0,
    order: str = "signed",
    batch_size: int | None = None,
    kernel: str = "reference",
    ties: str = "random",
    seed: int = 0,
    sample_ids: Any = None,
    road_noise: float = ROAD_NOISE,
    lerf: bool = True,
    random_baseline: bool = True,
) -> FaithfulnessGames:
    """Most-relevant-first games, and (``lerf``, ``random_baseline``) the least-relevant-first
    games and the random-order baseline, all in the same forward batches. Over pixels, or over
    superpixels when ``labels [N, H, W]`` is given (as :func:`superpixel_deletion_insertion`).
    ``seed`` and ``sample_ids`` (``[N]``, default ``0..N-1``) seed the random tie order, the
    random baseline and ROAD's noise per sample. Other arguments as
    :func:`deletion_insertion`."""
    check_faithfulness_params(
        substrate, order, step, blur_kernel, blur_sigma, kernel, ties, "most", road_noise
    )
    module, x, t, scores, m = _pixel_setup(model, images, maps, targets, order)
    n, _, h, w = x.shape
    ids = _sample_ids(sample_ids, n)
    if labels is None:
        unit_step = int(step) if step is not None else w
        n_units = torch.full((n,), h * w, dtype=torch.int64, device=x.device)
        sets, tied = unit_ranks(scores, n_units, ids, ties, seed, lerf, random_baseline)
        pixel_sets = sets
    else:
        unit_step = int(step) if step is not None else 1
        inv, unit_scores, n_units = superpixel_units(m, labels, order, x.device)
        sets, tied = unit_ranks(unit_scores, n_units, ids, ties, seed, lerf, random_baseline)
        pixel_sets = [r.gather(1, inv) for r in sets]
    n_steps = (n_units + unit_step - 1) // unit_step
    proto = _Protocol(
        unit_step, substrate, blur_kernel, blur_sigma, kernel, int(seed), road_noise, batch_size
    )
    played = _games(module, x, t, pixel_sets, n_steps, ids, proto)
    return FaithfulnessGames(
        played[0],
        played[1] if lerf else None,
        played[-1] if random_baseline else None,
        tied,
    )


def deletion_insertion(
    model: Any,
    images: torch.Tensor,
    maps: Any,
    targets: torch.Tensor | Sequence[int] | int,
    *,
    step: int | None = None,
    substrate: str = "baseline",
    blur_kernel: int = 11,
    blur_sigma: float = 5.0,
    order: str = "signed",
    batch_size: int | None = None,
    kernel: str = "reference",
    ties: str = "random",
    first: str = "most",
    seed: int = 0,
    sample_ids: Any = None,
    road_noise: float = ROAD_NOISE,
) -> DeletionInsertion:
    """Pixel deletion and insertion curves and AUCs (module docstring).

    Args:
        model: classifier ``[B, C, H, W] -> logits`` (an ``nn.Module`` in eval mode, or a
            loaded model whose ``module`` is used).
        images: model inputs ``[N, C, H, W]`` (moved to the model's device, float32).
        maps: attributions ``[N, H, W]`` (tensor or numpy, finite).
        targets: the explained class per image, ``[N]`` ints or one int.
        step: pixels changed per step (default ``W``: one image row's worth, as the
            reference's 224 at 224 x 224).
        substrate: what deletion puts in: ``baseline`` (zeros), ``blur`` (the blurred copy),
            ``mean`` (each channel's mean) or ``road`` (ROAD's noisy linear imputation).
        blur_kernel, blur_sigma: size (odd) and sigma (> 0) of the insertion start's blur.
        order: ``signed`` (decreasing attribution) or ``abs`` (decreasing ``|attribution|``).
        batch_size: step images per forward (default: RISE's ``default_batch_size``).
        kernel: ``reference`` (the RISE authors' kernel) or ``sampled`` (normalised Gaussian).
        ties: ``random`` (seeded per sample), ``index`` (lower index first) or ``reverse``
            (higher index first, the reference code's order).
        first: ``most`` (most relevant first, the paper's games) or ``least`` (LeRF).
        seed, sample_ids: the job seed and the samples' stable indices ``[N]`` (default
            ``0..N-1``): the random tie order and ROAD's noise are functions of them.
        road_noise: standard deviation of the noise ROAD adds to imputed pixels.

    Returns:
        :class:`DeletionInsertion` with ``n_steps = ceil(H * W / step)`` for every image.
    """
    return _one_order(
        first,
        model,
        images,
        maps,
        targets,
        labels=None,
        step=step,
        substrate=substrate,
        blur_kernel=blur_kernel,
        blur_sigma=blur_sigma,
        order=order,
        batch_size=batch_size,
        kernel=kernel,
        ties=ties,
        seed=seed,
        sample_ids=sample_ids,
        road_noise=road_noise,
    )


def superpixel_deletion_insertion(
    model: Any,
    images: torch.Tensor,
    maps: Any,
    targets: torch.Tensor | Sequence[int] | int,
    labels: Any,
    *,
    step: int | None = None,
    substrate: str = "baseline",
    blur_kernel: int = 11,
    blur_sigma: float = 5.0,
    order: str = "signed",
    batch_size: int | None = None,
    kernel: str = "reference",
    ties: str = "random",
    first: str = "most",
    seed: int = 0,
    sample_ids: Any = None,
    road_noise: float = ROAD_NOISE,
) -> DeletionInsertion:
    """Deletion and insertion over superpixels: whole superpixels change ``step`` at a time
    (default 1) in decreasing order of their mean attribution (``abs``: of ``|mean|``; equal
    means by the ``ties`` rule over superpixels in increasing label order). ``labels``:
    ``[N, H, W]`` integer superpixels (as from :func:`xaiq.xai.superpixels.segment`; gaps
    allowed). Image ``j`` with ``n_j`` superpixels has ``ceil(n_j / step)`` steps; other
    arguments and the result as :func:`deletion_insertion` (curves NaN-padded to the
    longest)."""
    return _one_order(
        first,
        model,
        images,
        maps,
        targets,
        labels=labels,
        step=step,
        substrate=substrate,
        blur_kernel=blur_kernel,
        blur_sigma=blur_sigma,
        order=order,
        batch_size=batch_size,
        kernel=kernel,
        ties=ties,
        seed=seed,
        sample_ids=sample_ids,
        road_noise=road_noise,
    )


def _one_order(first: str, *args: Any, **options: Any) -> DeletionInsertion:
    """The games of one order (``first``: ``most`` or ``least``) without the random
    baseline: what :func:`deletion_insertion` and :func:`superpixel_deletion_insertion`
    return."""
    if first not in FIRST:
        raise InvalidParameterError(f"first must be one of {', '.join(FIRST)}, got {first!r}")
    games = faithfulness_games(*args, **options, lerf=first == "least", random_baseline=False)
    return games.lerf if first == "least" and games.lerf is not None else games.morf
