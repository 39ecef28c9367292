"""``xaiq stats disagreement --compare KEY``: two levels of a key, compared per group.

For every group (the pooling rule's keys, without ``KEY``) and metric, with ``a`` and ``b``
the two values ``KEY`` takes (sorted: ``False`` before ``True``, smaller before larger):

- ``n_a``, ``mean_a``, ``n_b``, ``mean_b`` over the non-NULL values;
- ``diff = mean_a − mean_b`` with Welch's 95% interval (``diff_low``, ``diff_high``);
- ``p_value`` of scipy's two-sided Mann-Whitney U test (``u`` = U of group a);
- ``rank_biserial`` = 2U/(n_a·n_b) − 1 (Cliff's delta): > 0 when a tends larger.

So ``--compare correct`` answers "do misclassified samples disagree more?": a is
``False`` (misclassified), and a positive ``diff`` / ``rank_biserial`` on a disagreement
metric says yes. Both tests treat the values as independent; for a key that splits the
same samples (``n_segments``, ``k_frac``, ``superpixels``, a pair) the values are paired,
and ignoring that is usually conservative. p-values are per row, not adjusted for the
number of rows.

Values are fetched (O(values) memory), as a rank test needs them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy import Engine

from xaiq.db.errors import QueryError
from xaiq.db.grouping import resolve_grouping
from xaiq.db.intervals import mann_whitney, welch_difference
from xaiq.db.models import Disagreement
from xaiq.db.queries import (
    DISAGREEMENT_KEYS,
    _grouped_select,
    _key_values,
    _sort_key,
    check_group_by,
    check_jobs,
    check_metrics,
)
from xaiq.db.stats_table import StatsTable

COMPARE_COLUMNS = (
    "a",
    "n_a",
    "mean_a",
    "b",
    "n_b",
    "mean_b",
    "diff",
    "diff_low",
    "diff_high",
    "u",
    "p_value",
    "rank_biserial",
)
PAIRED_KEYS = frozenset({"pair", "method_a", "method_b", "superpixels", "n_segments", "k_frac"})


def _levels(values: Iterable[Any], key: str) -> list[Any]:
    levels = sorted({v for v in values if v is not None}, key=lambda v: (str(type(v)), v))
    if len(levels) != 2:
        shown = ", ".join(str(v) for v in levels[:5]) or "none"
        raise QueryError(
            f"--compare {key} needs a key with exactly two values here; it has "
            f"{len(levels)} ({shown})"
        )
    return levels


def _stats(values: np.ndarray) -> tuple[int, float | None, float | None]:
    n = int(values.size)
    mean = float(values.mean()) if n else None
    sd = float(values.std(ddof=1)) if n >= 2 else None
    return n, mean, sd


def compare_table(
    engine: Engine,
    job_ids: Iterable[int] | None,
    group_by: str | Iterable[str] | None,
    key: str,
    metrics: str | Iterable[str] | None = None,
    *,
    pool: bool = False,
) -> StatsTable:
    """Per group and metric: the two levels of ``key`` compared (module doc). Raises
    :class:`QueryError` for an unknown key, a key also in ``group_by``, or a key that does
    not take exactly two (non-NULL) values in the selection."""
    found = check_group_by(key, DISAGREEMENT_KEYS)
    if len(found) != 1:
        raise QueryError(f"--compare needs exactly one key, not {key!r}")
    compare = found[0]
    user = check_group_by(group_by, DISAGREEMENT_KEYS)
    if compare in user:
        raise QueryError(f"--compare {compare}: the key cannot also be a group-by key")
    names = check_metrics(metrics)
    jobs = check_jobs(engine, job_ids)
    grouping = resolve_grouping(engine, jobs, user, pool=pool, exclude=[compare])
    keys = [*grouping.keys, compare]
    cols, base = _grouped_select(Disagreement, keys, DISAGREEMENT_KEYS, jobs)
    values = [getattr(Disagreement, m) for m in names]
    stmt = base.add_columns(*cols, *values)
    nk = len(cols)
    acc: dict[tuple, dict[Any, list[list[Any]]]] = {}
    with engine.connect() as conn:
        for raw in conn.execution_options(yield_per=50_000).execute(stmt):
            kv = _key_values(tuple(raw[:nk]), keys, DISAGREEMENT_KEYS)
            group = tuple(kv[k] for k in grouping.keys)
            lists = acc.setdefault(group, {}).setdefault(kv[compare], [[] for _ in names])
            for j in range(len(names)):
                lists[j].append(raw[nk + j])
    levels = _levels((lv for g in acc.values() for lv in g), compare)
    rows = []
    for group in sorted(acc, key=_sort_key):
        by_level = acc[group]
        for j, metric in enumerate(names):
            a, b = (
                np.array(
                    [v for v in by_level.get(lv, [[]] * len(names))[j] if v is not None],
                    dtype=np.float64,
                )
                for lv in levels
            )
            n_a, mean_a, sd_a = _stats(a)
            n_b, mean_b, sd_b = _stats(b)
            row: dict[str, Any] = {
                **dict(zip(grouping.keys, group, strict=True)),
                "metric": metric,
                "a": levels[0],
                "n_a": n_a,
                "mean_a": mean_a,
                "b": levels[1],
                "n_b": n_b,
                "mean_b": mean_b,
                **dict.fromkeys(COMPARE_COLUMNS[6:]),
            }
            if mean_a is not None and mean_b is not None:
                d = welch_difference(n_a, mean_a, sd_a, n_b, mean_b, sd_b)
                row.update(diff=d.diff, diff_low=d.low, diff_high=d.high)
                mw = mann_whitney(a, b)
                if mw is not None:
                    row.update(u=mw.u, p_value=mw.p_value, rank_biserial=mw.rank_biserial)
            rows.append(row)
    title = grouping.title(f"disagreement: {compare} = {levels[0]} (a) vs {levels[1]} (b)")
    columns = [*grouping.keys, "metric", *COMPARE_COLUMNS]
    return StatsTable(rows, columns, title, grouping)


__all__ = ["COMPARE_COLUMNS", "PAIRED_KEYS", "compare_table"]
