"""Ranking with ties broken in a seeded random order per sample, never by position.

A map that holds many equal values (an all-zero Grad-CAM map, the flat parts of an
Integrated Gradients map) has no order among them. Sorting it "stably" puts the tied pixels
in index order (the top rows of the image first), so whatever uses the ranking partly
measures index order. :func:`rank` orders equal values by a random permutation that depends
only on ``(seed, sample id)`` (counter-based bits of :func:`xaiq.xai.noise.uniform_bits`),
so a sample's ranking is the same in any batch, shard or worker; ``ties="index"`` keeps
the lower index first (the source lab's convention), ``ties="reverse"`` the higher.

:func:`tied_in_top` counts how many of the first ``b`` ranked entries were chosen among
ties, i.e. how much of a top-``b`` selection the tie rule decided.
"""

from __future__ import annotations

import torch

from xaiq.xai.noise import uniform_bits

TIES = ("random", "index", "reverse")
STREAM_TIES = 0x5449_0001  # the tie permutation's stream (shared by every user of rank())


def tie_permutation(
    seed: int, sample_ids: torch.Tensor, n_elements: int, device: torch.device | None = None
) -> torch.Tensor:
    """A random permutation ``[A, n_elements]`` (int64) per sample id, a pure function of
    ``(seed, sample id)``: the order in which tied entries are taken."""
    dev = device if device is not None else sample_ids.device
    keys = uniform_bits(seed, sample_ids.to(dev, torch.int64), n_elements, stream=STREAM_TIES)
    return torch.sort(keys, dim=1, stable=True).indices


def rank(
    values: torch.Tensor,
    *,
    descending: bool = False,
    ties: str = "random",
    seed: int = 0,
    sample_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Indices ``[A, n]`` (int64) that sort each row of ``values [A, n]``.

    Args:
        values: float rows to rank (NaN is not allowed: the caller refuses it).
        descending: largest first.
        ties: ``random`` (equal values in the seeded random order of
            :func:`tie_permutation`), ``index`` (lower index first) or ``reverse`` (higher
            index first).
        seed, sample_ids: the randomness of ``ties="random"`` (``sample_ids [A]`` int64;
            default ``0..A-1``).
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {', '.join(TIES)}, got {ties!r}")
    a, n = values.shape
    if ties == "index":
        return torch.sort(values, dim=1, descending=descending, stable=True).indices
    if ties == "reverse":
        flipped = values.flip(1)
        order = torch.sort(flipped, dim=1, descending=descending, stable=True).indices
        return (n - 1) - order
    ids = torch.arange(a) if sample_ids is None else sample_ids
    perm = tie_permutation(seed, ids, n, device=values.device)
    order = torch.sort(values.gather(1, perm), dim=1, descending=descending, stable=True).indices
    return perm.gather(1, order)


def tied_in_top(values: torch.Tensor, order: torch.Tensor, b: int) -> torch.Tensor:
    """Per row, how many of the first ``b`` entries of ``order`` were chosen among ties:
    the entries equal to the ``b``-th ranked value when that value also occurs after
    position ``b`` (otherwise none: the top ``b`` did not depend on the tie rule).
    ``values [A, n]``, ``order [A, n]`` from :func:`rank`; returns int64 ``[A]``."""
    a, n = values.shape
    if b >= n or a == 0:
        return torch.zeros(a, dtype=torch.int64, device=values.device)
    ranked = values.gather(1, order)
    edge = ranked[:, b - 1 : b]
    crosses = ranked[:, b] == edge[:, 0]
    inside = (ranked[:, :b] == edge).sum(dim=1)
    return torch.where(crosses, inside, torch.zeros_like(inside))
