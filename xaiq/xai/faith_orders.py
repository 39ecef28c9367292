"""Blur kernels and pixel orders of the deletion/insertion protocol (docs/faithfulness.md).

Kernels (``kernel=``):

- ``reference`` (default): the RISE authors' kernel, an ``size x size`` array holding a unit
  impulse at its centre filtered by a Gaussian of ``sigma`` with reflecting borders (what
  ``scipy.ndimage.gaussian_filter(impulse, sigma)`` gives, truncated at ``4 sigma``). At
  11 x 11 and sigma 5 it is much flatter than the sampled Gaussian: the reflected tails fold
  back into the square. It sums to 1 (reflection keeps every weight inside).
- ``sampled``: ``exp(-(dx^2 + dy^2) / (2 sigma^2))`` at integer offsets, normalised to sum 1.

Tie rules (``ties=``) for units of equal attribution:

- ``random`` (default): a seeded random order per sample, a pure function of
  ``(seed, sample index)`` (counter-based keys of :mod:`xaiq.xai.noise`), so a sample's order
  does not depend on its batch, shard or worker;
- ``index``: the lower flat index first;
- ``reverse``: the higher flat index first, the RISE reference's
  ``np.flip(np.argsort(saliency))`` read with a stable sort.

The random-order baseline orders the units by another seeded stream, ignoring the map.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.noise import uniform_bits

KERNELS = ("reference", "sampled")
TIES = ("random", "index", "reverse")
# counter streams of the faithfulness protocol (the attack uses small numbers and crc32s
# above 2**32; these sit between)
STREAM_TIES = 0x46A17001
STREAM_RANDOM_ORDER = 0x46A17002
STREAM_ROAD_NOISE = 0x46A17003


# The documented maxima of the protocol's numbers (docs/operations.md, "Limits"). A kernel
# of 101 is nine times the reference's 11 and already wider than the 28x28 digits and half a
# 224x224 input (a larger one only multiplies the cost: 10,001 held a core for minutes per
# image); past sigma 1,000 a kernel of at most 101 is flat to float32 precision anyway.
MAX_BLUR_KERNEL = 101
MAX_BLUR_SIGMA = 1_000.0


def _check_kernel(size: int, sigma: float) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise InvalidParameterError(f"blur_kernel must be an odd integer >= 1, got {size!r}")
    if size > MAX_BLUR_KERNEL:
        raise InvalidParameterError(
            f"blur_kernel={size!r} is above its maximum {MAX_BLUR_KERNEL} (odd, 1..101)"
        )
    if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not float(sigma) > 0.0:
        raise InvalidParameterError(f"blur_sigma must be > 0, got {sigma!r}")
    if not math.isfinite(sigma) or sigma > MAX_BLUR_SIGMA:
        raise InvalidParameterError(
            f"blur_sigma={sigma!r} is above its maximum {MAX_BLUR_SIGMA:g} (finite, in (0, 1000])"
        )


def gaussian_kernel(size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """``[size, size]`` float32 sampled Gaussian ``exp(-(dx^2 + dy^2) / (2 sigma^2))`` at
    integer offsets from the centre, normalised to sum 1 (``kernel="sampled"``)."""
    _check_kernel(size, sigma)
    d = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(d**2) / (2.0 * float(sigma) ** 2))
    k = torch.outer(g, g)
    return (k / k.sum()).to(torch.float32)


def reference_kernel(size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """``[size, size]`` float32: a centred unit impulse filtered by a Gaussian of ``sigma``
    with reflecting borders (``kernel="reference"``, the RISE authors' insertion blur).

    The filter is separable, so the kernel is the outer product of the 1-D filtered impulse:
    weights ``exp(-j^2 / (2 sigma^2))`` for ``|j| <= round(4 sigma)``, normalised, each added at
    the reflected position of ``centre + j`` (half-sample symmetric: ``d c b a | a b c d``)."""
    _check_kernel(size, sigma)
    radius = int(4.0 * float(sigma) + 0.5)
    j = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-(j**2) / (2.0 * float(sigma) ** 2))
    w /= w.sum()
    g = torch.zeros(size, dtype=torch.float64)
    centre = size // 2
    for i in range(size):  # output i collects the weight at offset j where reflect(i+j) is centre
        pos = (i + j.long()) % (2 * size)
        pos = torch.where(pos >= size, 2 * size - 1 - pos, pos)
        g[i] = w[pos == centre].sum()
    return torch.outer(g, g).to(torch.float32)


def blur_kernel_of(kernel: str, size: int, sigma: float) -> torch.Tensor:
    """The ``[size, size]`` kernel named ``kernel`` (one of :data:`KERNELS`)."""
    if kernel not in KERNELS:
        raise InvalidParameterError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    return reference_kernel(size, sigma) if kernel == "reference" else gaussian_kernel(size, sigma)


def blur(
    images: torch.Tensor, size: int = 11, sigma: float = 5.0, kernel: str = "reference"
) -> torch.Tensor:
    """``images [N, C, H, W]`` convolved per channel with the ``kernel`` of ``size`` and
    ``sigma``, zero padding (output: the input's shape, dtype and device)."""
    c = images.shape[1]
    k = blur_kernel_of(kernel, size, sigma).to(images.device, images.dtype)
    return F.conv2d(images, k.expand(c, 1, size, size), padding=size // 2, groups=c)


def check_ties(ties: str) -> None:
    if ties not in TIES:
        raise InvalidParameterError(f"ties must be one of {', '.join(TIES)}, got {ties!r}")


def sample_keys(seed: int, sample_ids: torch.Tensor, n_units: int, stream: int) -> torch.Tensor:
    """``[N, n_units]`` int64 per-sample random keys (counter-based: a pure function of
    ``(seed, sample id, stream, unit)``)."""
    return uniform_bits(int(seed), sample_ids.to(torch.int64), n_units, stream=stream)


def order_units(scores: torch.Tensor, ties: str, keys: torch.Tensor | None = None) -> torch.Tensor:
    """``[N, U]`` scores -> ``[N, U]`` unit indices in decreasing score; equal scores in the
    ``ties`` rule's order (``random`` needs ``keys [N, U]``: equal scores by increasing key)."""
    check_ties(ties)
    if ties == "index":
        return torch.sort(-scores, dim=1, stable=True).indices
    if ties == "reverse":
        return torch.sort(scores, dim=1, stable=True).indices.flip(1)
    if keys is None:
        raise InvalidParameterError("ties='random' needs the per-sample keys")
    perm = torch.sort(keys, dim=1, stable=True).indices
    inner = torch.sort(-scores.gather(1, perm), dim=1, stable=True).indices
    return perm.gather(1, inner)


def ranks_of(order: torch.Tensor) -> torch.Tensor:
    """The inverse permutation: ``ranks[n, order[n, r]] = r``."""
    ranks = torch.empty_like(order)
    arange = torch.arange(order.shape[1], device=order.device).expand_as(order)
    return ranks.scatter_(1, order, arange)


def tied_share(scores: torch.Tensor) -> torch.Tensor:
    """``[N]`` float64: the share of units whose score equals another unit's (what a tie rule
    decides). 0 for a map of distinct values, 1 for a constant map."""
    s = torch.sort(scores, dim=1).values
    eq = s[:, 1:] == s[:, :-1]
    tied = torch.zeros_like(s, dtype=torch.bool)
    tied[:, 1:] |= eq
    tied[:, :-1] |= eq
    return tied.double().mean(dim=1) if scores.shape[1] else torch.zeros(scores.shape[0])


def unit_ranks(
    scores: torch.Tensor,
    n_units: torch.Tensor,
    ids: torch.Tensor,
    ties: str,
    seed: int,
    lerf: bool,
    random_baseline: bool,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Unit ranks ``[N, U]`` of the MoRF order (then LeRF, random as asked) for scores
    padded with ``-inf`` beyond ``n_units[j]`` (padding always ranks last), and the share of
    tied units per image."""
    u = scores.shape[1]
    dev = scores.device
    keys = sample_keys(seed, ids, u, STREAM_TIES).to(dev) if ties == "random" else None
    morf = ranks_of(order_units(scores, ties, keys))
    sets = [morf]
    real = torch.arange(u, device=dev)[None, :] < n_units[:, None]
    if lerf:
        sets.append(torch.where(real, n_units[:, None] - 1 - morf, morf))
    if random_baseline:
        rkeys = sample_keys(seed, ids, u, STREAM_RANDOM_ORDER).to(dev)
        flat = torch.where(real, torch.zeros_like(scores), torch.full_like(scores, -np.inf))
        sets.append(ranks_of(order_units(flat, "random", rkeys)))
    tied = (
        torch.stack(
            [tied_share(scores[j : j + 1, : int(n_units[j])])[0] for j in range(scores.shape[0])]
        )
        if scores.shape[0]
        else torch.zeros(0, dtype=torch.float64)
    )
    return sets, tied.double().cpu()


def superpixel_units(
    m: torch.Tensor, labels: Any, order: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image: pixel -> unit index ``[N, H*W]``, unit scores padded with ``-inf`` ``[N, U]``
    (mean attribution, or ``|mean|``), units per image ``[N]``."""
    n, h, w = m.shape
    lab = labels.detach().cpu().numpy() if hasattr(labels, "detach") else np.asarray(labels)
    if lab.shape != (n, h, w) or not np.issubdtype(lab.dtype, np.integer):
        raise InvalidParameterError(f"labels must be integers [{n}, {h}, {w}], got {lab.shape}")
    flat_maps = m.reshape(n, h * w).double().cpu()
    invs, means = [], []
    for j in range(n):  # one relabelling per image; the superpixel means are one scatter
        ids, inverse = np.unique(lab[j].reshape(-1), return_inverse=True)
        inv = torch.from_numpy(inverse.reshape(-1).astype(np.int64))
        sums = torch.zeros(ids.size, dtype=torch.float64).index_add_(0, inv, flat_maps[j])
        mean = sums / torch.bincount(inv, minlength=ids.size).double()
        invs.append(inv)
        means.append(mean.abs() if order == "abs" else mean)
    u = max((v.numel() for v in means), default=1)
    scores = torch.full((n, u), -np.inf, dtype=torch.float64)
    for j, v in enumerate(means):
        scores[j, : v.numel()] = v
    n_units = torch.tensor([v.numel() for v in means], dtype=torch.int64)
    inv_t = torch.stack(invs) if invs else torch.zeros(0, h * w, dtype=torch.int64)
    return inv_t.to(device), scores.to(device), n_units.to(device)
