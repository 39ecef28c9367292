"""Counter-based Gaussian noise: a value is a pure function of its counters, not of a stream.

``normal(seed, sample_ids, iteration, n_candidates, n_elements, stream=...)`` returns the
noise for every ``(sample, candidate, element)`` of one iteration at once. Entry
``[a, k, e]`` depends only on ``(seed, sample_ids[a], stream, iteration, k, e)``, so a sample
gets the same noise whether it is computed alone or inside any batch, shard or worker — the
job system's guarantee (docs/architecture.md, "Determinism"), and what makes the batched
attack equal a one-image loop.

How: the counters are folded into 32-bit keys with an integer finaliser (two xor-shift /
multiply rounds, constants below 2**31 so every product of a 32-bit value fits in int64 --
no reliance on overflow); each pair of elements is hashed against the key, and the hash
goes through Box-Muller with table lookups for the radius (20 bits) and the angle (12 bits).
Only integer operations, exact lookups and one multiply per value are involved, so
vectorised and scalar kernels (CPU SIMD tails, CUDA) give the same bits for an element
wherever it sits in a tensor, and it costs a handful of passes over the values.
"""

from __future__ import annotations

import math
from typing import TypeVar

import torch

_M32 = 0xFFFFFFFF
_C1 = 0x21F0AAAD  # both multipliers < 2**31: x * c < 2**63 for any 32-bit x
_C2 = 0x735A2D97
_GOLDEN = 0x9E3779B9
_RADIUS_BITS = 20
_ANGLE_BITS = 12

_tables: dict[tuple[str, int | None], tuple[torch.Tensor, torch.Tensor]] = {}
_salt_cache: dict[tuple[str, int | None, int], torch.Tensor] = {}


Word = TypeVar("Word", torch.Tensor, int)


def mix32(x: Word) -> Word:
    """Integer finaliser on values in ``[0, 2**32)``, an int64 tensor (a new one is returned) or
    a Python int (the same bits: the scalar counters are folded in Python, not as kernels on a
    tensor of copies)."""
    x = x ^ (x >> 16)
    x = (x * _C1) & _M32
    x = x ^ (x >> 15)
    x = (x * _C2) & _M32
    return x ^ (x >> 15)


def _combine(h: Word, value: Word) -> Word:
    """Fold a non-negative counter (< 2**64, low word then high word) into the 32-bit key ``h``."""
    if isinstance(value, int) and value < 0:
        raise ValueError(f"counters must be non-negative, got {value}")
    lo, hi = value & _M32, (value >> 32) & _M32
    h = mix32(((h + _GOLDEN) & _M32) ^ lo)
    return mix32(((h + _GOLDEN) & _M32) ^ hi)


def _scalar_key(seed: int, stream: int, iteration: int) -> int:
    """The scalar counters folded (in Python ints): the first part of every key."""
    scalar = 0x2545F491
    for counter in (seed & ((1 << 64) - 1), stream, iteration):
        scalar = _combine(scalar, counter)
    return scalar


def _candidate_keys(scalars: torch.Tensor, ids: torch.Tensor, n_candidates: int) -> torch.Tensor:
    h = _combine(scalars, ids)
    cand = torch.arange(n_candidates, dtype=torch.int64, device=ids.device)
    return _combine(h[:, None].expand(-1, n_candidates), cand[None, :])


def counter_keys(
    seed: int,
    sample_ids: torch.Tensor,
    stream: int,
    iteration: int,
    n_candidates: int,
) -> torch.Tensor:
    """32-bit keys ``[A, K]`` (int64) for samples ``sample_ids [A]`` and candidates ``0..K-1``."""
    ids = sample_ids.to(torch.int64)
    scalars = torch.full_like(ids, _scalar_key(seed, stream, iteration))
    return _candidate_keys(scalars, ids, n_candidates)


def counter_keys_at(
    seed: int,
    sample_ids: torch.Tensor,
    stream: int,
    iterations: torch.Tensor,
    n_candidates: int,
) -> torch.Tensor:
    """:func:`counter_keys` with an iteration per sample (``iterations [A]``), in one pass:
    row ``a`` equals ``counter_keys(seed, sample_ids[a:a+1], stream, iterations[a], K)``."""
    ids = sample_ids.to(torch.int64)
    values = iterations.tolist()
    scalar = {v: _scalar_key(seed, stream, int(v)) for v in set(values)}
    scalars = torch.tensor([scalar[v] for v in values], dtype=torch.int64, device=ids.device)
    return _candidate_keys(scalars, ids, n_candidates)


def _tables_on(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Radius table ``[2**20]`` and direction table ``[2**12, 2]`` (cos, sin; float32), built
    once per device.

    Built in float64 on the CPU by one call each, so every sample everywhere reads the same
    values; the lookups themselves are exact."""
    key = (device.type, device.index)
    if key not in _tables:
        n_r, n_a = 1 << _RADIUS_BITS, 1 << _ANGLE_BITS
        u = (torch.arange(n_r, dtype=torch.float64) + 0.5) / n_r
        radius = torch.sqrt(-2.0 * torch.log(u))
        angle = (torch.arange(n_a, dtype=torch.float64) + 0.5) * (2.0 * math.pi / n_a)
        directions = torch.stack([angle.cos(), angle.sin()], dim=1)
        _tables[key] = tuple(  # type: ignore[assignment]
            t.to(device=device, dtype=torch.float32) for t in (radius, directions)
        )
    return _tables[key]


def _salted(n_pairs: int, device: torch.device) -> torch.Tensor:
    key = (device.type, device.index, n_pairs)
    if key not in _salt_cache:
        if len(_salt_cache) > 64:
            _salt_cache.clear()
        counters = torch.arange(n_pairs, dtype=torch.int64, device=device)
        _salt_cache[key] = mix32((counters + 0x632BE5AB) & _M32)
    return _salt_cache[key]


def normal_from_keys(keys: torch.Tensor, n_elements: int) -> torch.Tensor:
    """Standard normals ``[*keys.shape, n_elements]`` float32 for int64 32-bit ``keys``.

    Element ``e`` belongs to the pair ``e // 2``, whose 32-bit hash ``h`` of ``(key, pair)``
    gives ``u = (h >> 12 + 0.5) / 2**20`` and ``theta = 2 pi (h & 4095 + 0.5) / 4096``;
    Box-Muller: ``r cos(theta)`` for even ``e``, ``r sin(theta)`` for odd, ``r = sqrt(-2 ln u)``.
    ``r`` and ``cos``/``sin`` are table lookups, so ``|z| <= 5.39`` (P ~ 7e-8 beyond) and
    there are 4096 directions per pair: ample for random search, cheap, and exact to repeat.
    """
    device = keys.device
    n_pairs = (n_elements + 1) // 2
    h = mix32(keys[..., None] ^ _salted(n_pairs, device)).flatten()
    radius_t, directions_t = _tables_on(device)
    radius = radius_t.index_select(0, h >> _ANGLE_BITS)
    direction = directions_t.index_select(0, h.bitwise_and_((1 << _ANGLE_BITS) - 1))  # [P, 2]
    z = direction.mul_(radius[:, None]).view(*keys.shape, 2 * n_pairs)  # (r cos, r sin) pairs
    return z[..., :n_elements] if 2 * n_pairs != n_elements else z


def normal(
    seed: int,
    sample_ids: torch.Tensor,
    iteration: int,
    n_candidates: int,
    n_elements: int,
    *,
    stream: int = 0,
) -> torch.Tensor:
    """N(0, 1) noise ``[A, K, n_elements]`` float32 on ``sample_ids``' device.

    Args:
        seed: the job seed (any non-negative int below 2**64).
        sample_ids: stable sample indices ``[A]`` (int64, non-negative).
        iteration: the iteration counter (non-negative).
        n_candidates: ``K``; candidate ``k`` gets counter ``k``.
        n_elements: values per candidate (e.g. ``C*H*W``); element ``e`` has counter ``e``.
        stream: separates independent uses (e.g. one per attack strategy).
    """
    keys = counter_keys(seed, sample_ids, stream, iteration, n_candidates)
    return normal_from_keys(keys, n_elements)


def uniform_bits(
    seed: int, sample_ids: torch.Tensor, n_elements: int, *, stream: int
) -> torch.Tensor:
    """Counter-based 32-bit integers ``[A, n_elements]`` (int64) for per-sample random choices."""
    keys = counter_keys(seed, sample_ids, stream, 0, 1)[:, 0]
    counters = torch.arange(n_elements, dtype=torch.int64, device=keys.device)
    return mix32(keys[:, None] ^ mix32((counters + 0x1B873593) & _M32)[None, :])
