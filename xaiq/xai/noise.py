"""Counter-based Gaussian noise: a value is a pure function of its counters, not of a stream.

``normal(seed, sample_ids, iteration, n_candidates, n_elements, stream=...)`` returns the
noise for every ``(sample, candidate, element)`` of one iteration at once. Entry
``[a, k, e]`` depends only on ``(seed, sample_ids[a], stream, iteration, k, e)``, so a sample
gets the same noise whether it is computed alone or inside any batch, shard or worker — the
job system's guarantee (DESIGN.md §6), and what makes the batched attack equal a one-image loop.

How: the counters are folded into 32-bit keys with an integer finaliser (two xor-shift /
multiply rounds, constants below 2**31 so every product of a 32-bit value fits in int64 --
no reliance on overflow), the element index is hashed against the key, and pairs of
uniforms (23 and 16 bits) go through Box-Muller. Box-Muller uses only operations that are
correctly rounded everywhere (add, mul, div, sqrt, ``frexp``, table lookups): ``log`` is an
atanh series after ``frexp``, and ``cos``/``sin`` of the angle (65,536 directions) come from
a table. Vectorised and scalar kernels (CPU SIMD tails, CUDA) therefore give the same bits
for an element wherever it sits in a tensor.
"""

from __future__ import annotations

import math

import torch

_M32 = 0xFFFFFFFF
_C1 = 0x21F0AAAD  # both multipliers < 2**31: x * c < 2**63 for any 32-bit x
_C2 = 0x735A2D97
_GOLDEN = 0x9E3779B9
_LN2 = math.log(2.0)
_ANGLE_BITS = 16

_tables: dict[tuple[str, int | None], tuple[torch.Tensor, torch.Tensor]] = {}


def mix32(x: torch.Tensor) -> torch.Tensor:
    """Integer finaliser on int64 values in ``[0, 2**32)``; returns the same range (new tensor)."""
    x = x ^ (x >> 16)
    x = (x * _C1) & _M32
    x = x ^ (x >> 15)
    x = (x * _C2) & _M32
    return x ^ (x >> 15)


def _combine(h: torch.Tensor, value: torch.Tensor | int) -> torch.Tensor:
    """Fold a non-negative counter (< 2**64, low word then high word) into the 32-bit key ``h``."""
    if isinstance(value, int) and value < 0:
        raise ValueError(f"counters must be non-negative, got {value}")
    lo, hi = value & _M32, (value >> 32) & _M32
    h = mix32(((h + _GOLDEN) & _M32) ^ lo)
    return mix32(((h + _GOLDEN) & _M32) ^ hi)


def counter_keys(
    seed: int,
    sample_ids: torch.Tensor,
    stream: int,
    iteration: int,
    n_candidates: int,
) -> torch.Tensor:
    """32-bit keys ``[A, K]`` (int64) for samples ``sample_ids [A]`` and candidates ``0..K-1``."""
    ids = sample_ids.to(torch.int64)
    h = torch.full_like(ids, 0x2545F491)
    for counter in (seed & ((1 << 64) - 1), stream, iteration):
        h = _combine(h, counter)
    h = _combine(h, ids)
    cand = torch.arange(n_candidates, dtype=torch.int64, device=ids.device)
    return _combine(h[:, None].expand(-1, n_candidates), cand[None, :])


def _trig_tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    key = (device.type, device.index)
    if key not in _tables:
        n = 1 << _ANGLE_BITS
        angles = [(i + 0.5) * 2.0 * math.pi / n for i in range(n)]
        cos = torch.tensor([math.cos(a) for a in angles], dtype=torch.float32, device=device)
        sin = torch.tensor([math.sin(a) for a in angles], dtype=torch.float32, device=device)
        _tables[key] = (cos, sin)
    return _tables[key]


def _log_unit(u: torch.Tensor) -> torch.Tensor:
    """Natural log of float32 ``u`` in (0, 1] with basic operations only (rel. error < 1e-7)."""
    m, e = torch.frexp(u)  # u = m * 2**e with m in [0.5, 1)
    t = (m - 1.0) / (m + 1.0)  # t in [-1/3, 0)
    t2 = t * t
    series = torch.full_like(t, 1.0 / 17.0)
    for odd in (15, 13, 11, 9, 7, 5, 3, 1):
        series = series * t2 + 1.0 / odd
    return 2.0 * t * series + e.to(torch.float32) * _LN2


def normal_from_keys(keys: torch.Tensor, n_elements: int) -> torch.Tensor:
    """Standard normals ``[*keys.shape, n_elements]`` float32 for int64 32-bit ``keys``.

    Element ``e`` comes from the pair ``e // 2``: ``r cos(theta)`` when ``e`` is even and
    ``r sin(theta)`` when odd. ``r = sqrt(-2 ln u)`` with ``u`` the top 23 bits (+ 1/2) of the
    hash of ``(key, 2 * pair)`` (so ``|z| <= 5.6``); ``theta`` is the top 16 bits (+ 1/2) of
    the hash of ``(key, 2 * pair + 1)`` times ``2 pi / 2**16``, read from a cos/sin table.
    """
    device = keys.device
    n_pairs = (n_elements + 1) // 2
    counters = torch.arange(2 * n_pairs, dtype=torch.int64, device=device)
    salted = mix32((counters + 0x632BE5AB) & _M32).view(n_pairs, 2)
    k = keys[..., None]
    u = ((mix32(k ^ salted[:, 0]) >> 9).to(torch.float32) + 0.5) * (1.0 / (1 << 23))
    radius = torch.sqrt(_log_unit(u) * -2.0)
    angle = mix32(k ^ salted[:, 1]) >> (32 - _ANGLE_BITS)
    cos, sin = _trig_tables(device)
    z = torch.stack((radius * cos[angle], radius * sin[angle]), dim=-1).flatten(-2)
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
