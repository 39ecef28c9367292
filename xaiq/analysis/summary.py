"""Per-group summary statistics computed in numpy: the single definition both backends share.

Definitions (the contract of ``xaiq stats``):

- ``n``: count of non-NULL values; ``nulls``: count of NULL values.
- ``mean``: arithmetic mean; ``std``: *sample* standard deviation (ddof=1, as PostgreSQL's
  ``stddev_samp``), NULL when n < 2.
- ``p25``, ``median``, ``p75``: linear interpolation between order statistics — for sorted
  values ``x[0..n-1]`` and fraction ``q``, ``h = (n - 1) q`` and the result is
  ``x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h])``. This is numpy's default
  ``np.percentile`` method and PostgreSQL's ``percentile_cont``.
- Every statistic is NULL (``None``) for a group with n = 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

STAT_COLUMNS = ("n", "nulls", "mean", "std", "min", "p25", "median", "p75", "max")
QUANTILES = (0.25, 0.5, 0.75)


def summarize(values: np.ndarray | Sequence[float], nulls: int = 0) -> dict[str, Any]:
    """Statistics of ``values`` (float64 ``[n]``, no NaN) with ``nulls`` NULLs counted apart."""
    v = np.asarray(values, dtype=np.float64)
    n = int(v.size)
    out: dict[str, Any] = {"n": n, "nulls": int(nulls)}
    if n == 0:
        out.update(dict.fromkeys(STAT_COLUMNS[2:]))
        return out
    p25, med, p75 = (float(x) for x in np.percentile(v, [100 * q for q in QUANTILES]))
    out.update(
        mean=float(v.mean()),
        std=float(v.std(ddof=1)) if n >= 2 else None,
        min=float(v.min()),
        p25=p25,
        median=med,
        p75=p75,
        max=float(v.max()),
    )
    return out


class _Codes(dict):
    """Group key -> dense code, assigned on first sight (``__getitem__`` stays C-fast)."""

    def __missing__(self, key: Any) -> int:
        code = self[key] = len(self)
        return code


class GroupedColumns:
    """Accumulates chunks of ``(group key, value per column)`` rows; summarises per group.

    Values are kept as float64 arrays per chunk (8 bytes per value), so memory is O(values),
    not O(rows x Python objects). NULL (None) and NaN count as nulls.
    """

    def __init__(self, n_columns: int) -> None:
        self.n_columns = n_columns
        self._codes = _Codes()
        self._chunks: list[tuple[np.ndarray, list[np.ndarray]]] = []

    def add(self, keys: Iterable[Any], n_rows: int, columns: Sequence[Iterable[Any]]) -> None:
        """One chunk of ``n_rows``: ``keys`` yields each row's group key (any hashable), and
        ``columns[j]`` its j-th values (None for NULL)."""
        code = np.fromiter(map(self._codes.__getitem__, keys), dtype=np.int64, count=n_rows)
        values = [np.array(list(col), dtype=np.float64) for col in columns]  # None -> nan
        self._chunks.append((code, values))

    def add_coded(
        self, keys: Sequence[Any], code: np.ndarray, values: Sequence[np.ndarray]
    ) -> None:
        """One chunk whose rows are already coded: ``code[i]`` indexes ``keys`` (the same
        list on every call); ``values[j]`` float64 with NaN for NULL."""
        for k in keys:
            self._codes[k]  # noqa: B018 - registers the key in order
        self._chunks.append((code.astype(np.int64, copy=False), list(values)))

    def arrays(self) -> list[tuple[Any, list[np.ndarray]]]:
        """``[(group key, [float64 values of column j, NaN for NULL])]`` in first-seen key
        order (the rows of a group in the order they were added)."""
        if not self._chunks:
            return []
        code = np.concatenate([c for c, _ in self._chunks])
        order = np.argsort(code, kind="stable")
        bounds = np.searchsorted(code[order], np.arange(len(self._codes) + 1))
        cols = [
            np.concatenate([vals[j] for _, vals in self._chunks])[order]
            for j in range(self.n_columns)
        ]
        return [
            (key, [col[bounds[g] : bounds[g + 1]] for col in cols])
            for key, g in self._codes.items()
        ]

    def results(self) -> list[tuple[Any, list[dict[str, Any]]]]:
        """``[(group key, [summary of column j for j in columns])]`` in first-seen key order."""
        out = []
        for key, cols in self.arrays():
            stats = []
            for v in cols:
                finite = v[~np.isnan(v)]
                stats.append(summarize(finite, nulls=int(v.size - finite.size)))
            out.append((key, stats))
        return out
