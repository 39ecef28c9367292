"""Per-sample random streams: a sample's randomness depends on (job seed, sample index) only.

That makes results independent of which shard, batch or worker computed a sample.
"""

from __future__ import annotations

import torch

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def sample_seed(seed: int, index: int, stream: int = 0) -> int:
    """A 63-bit seed for sample ``index`` of a job seeded ``seed``; ``stream`` separates uses."""
    x = _splitmix64(seed & _MASK64)
    x = _splitmix64(x ^ (index & _MASK64))
    x = _splitmix64(x ^ (stream & _MASK64))
    return x & ((1 << 63) - 1)


def sample_generator(
    seed: int, index: int, device: torch.device | str | None = None, stream: int = 0
) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded for one sample."""
    gen = torch.Generator(device=device if device is not None else "cpu")
    gen.manual_seed(sample_seed(seed, index, stream))
    return gen
