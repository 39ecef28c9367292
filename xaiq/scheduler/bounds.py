"""The documented maximum of every job-spec number (docs/operations.md, "Limits").

A spec is data from users; each number is checked against a range here before anything is
written, so that a typo (``--seed 1e30``, ``n_segments=10**20``) is one line at submit instead
of an overflow inside a worker. Ranges follow what the store can hold (ids and counts are
32-bit columns on PostgreSQL, the seed 64-bit) and what a shard can compute in memory. The
compute parameters of explainers and of the attack have their own maxima in ``xaiq.xai``
(:data:`xaiq.xai.explainers.base.MAXIMA`, :data:`xaiq.xai.attack.params.MAXIMA`).
"""

from __future__ import annotations

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

# key: (minimum, maximum)
SPEC_RANGES: dict[str, tuple[int, int]] = {
    "seed": (0, INT64_MAX),
    "shard_size": (1, 1_000_000),
    "batch_size": (1, 4096),
    "priority": (-1_000_000, 1_000_000),
    "max_attempts": (1, 100),
    "limit": (1, 1_000_000_000),
    "from_job": (1, INT32_MAX),
    "n_segments": (1, 100_000),
}
MAX_LIST = 64  # methods, superpixels, n_segments, k_frac: at most this many entries each
MAX_SPEC_DEPTH = 8  # nesting of a spec file (objects inside objects)
MAX_SPEC_BYTES = 1_000_000
JOB_ID_RANGE = (1, INT32_MAX)  # job ids are 32-bit on PostgreSQL


def spec_range(key: str) -> tuple[int, int]:
    """``(minimum, maximum)`` of an integer spec key (``n_segments[0]`` -> ``n_segments``)."""
    return SPEC_RANGES[key.split("[", 1)[0]]


def depth(value: object, limit: int = MAX_SPEC_DEPTH) -> int:
    """Nesting depth of a JSON value, counted up to ``limit + 1`` (never recurses deeper)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        stack.extend((child, level + 1) for child in children)
    return deepest
