"""The configuration a report reads its examples and its verdict's disagreement at.

``xaiq report --rank-at n_segments=49,k_frac=0.25`` chooses it; by default the most
informative one: the largest ``k`` (top-k size), with ``n_segments`` at its default (200, the
SLIC default) when the job has it, never a configuration whose top-k holds one superpixel
when another exists (there every top-k metric is 0 or 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from xaiq.db.errors import QueryError

DEFAULT_N_SEGMENTS = 200


def parse_rank_at(text: str | None) -> dict[str, str]:
    """``n_segments=49,k_frac=0.25`` -> ``{"n_segments": "49", "k_frac": "0.25"}``."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise QueryError(f"--rank-at wants KEY=VALUE pairs, got {part.strip()!r}")
        out[key.strip()] = value.strip()
    return out


def _top_k(config: Mapping[str, Any]) -> int:
    n = config.get("n_segments")
    kf = config.get("k_frac")
    if n is None or kf is None:
        return 0
    return max(1, math.floor(float(kf) * int(n)))


def _same(value: Any, wanted: str) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return math.isclose(float(value), float(wanted), rel_tol=1e-9, abs_tol=1e-12)
        except ValueError:
            return False
    return str(value) == wanted


def choose_config(
    configs: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    *,
    requested: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One of ``configs`` (dicts holding at least ``keys``, plus the constant keys), as
    ``{key: value}`` over ``keys``. ``requested``: the user's ``--rank-at`` (each key must be
    one of the configuration's keys and match a value); raises :class:`QueryError` naming
    the key and value otherwise."""
    if not configs:
        return {}
    pool = list(configs)
    for key, wanted in (requested or {}).items():
        if key not in pool[0]:
            known = ", ".join(k for k in pool[0] if k != "pair") or "none"
            raise QueryError(f"--rank-at: unknown key {key!r}; this job's keys: {known}")
        kept = [c for c in pool if _same(c[key], wanted)]
        if not kept:
            values = ", ".join(sorted({str(c[key]) for c in pool}))
            raise QueryError(f"--rank-at: {key}={wanted} is not in the job (values: {values})")
        pool = kept
    if len(pool) > 1 and any(_top_k(c) > 1 for c in pool):
        pool = [c for c in pool if _top_k(c) != 1]
    if not (requested or {}).get("n_segments"):
        at = [c for c in pool if c.get("n_segments") == DEFAULT_N_SEGMENTS]
        pool = at or pool
    best = max(pool, key=lambda c: (_top_k(c), float(c.get("k_frac") or 0.0)))
    return {k: best[k] for k in keys}


__all__ = ["choose_config", "parse_rank_at"]
