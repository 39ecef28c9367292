"""``xaiq stats disagreement --compare KEY``: two levels of a key, compared per group.

For every group (the pooling rule's keys, without ``KEY``) and metric, with ``a`` and ``b``
the two values ``KEY`` takes (sorted: ``False`` before ``True``, smaller before larger):

- ``n_a``, ``mean_a``, ``n_b``, ``mean_b`` over the non-NULL values;
- independent groups (a sample-level key such as ``correct``, ``label``, or ``model``):
  ``diff = mean_a − mean_b`` with Welch's 95% interval (``diff_low``, ``diff_high``),
  ``p_value`` of scipy's two-sided Mann-Whitney U test (``statistic`` = U of group a) and
  ``rank_biserial`` = 2U/(n_a·n_b) − 1 (Cliff's delta): > 0 when a tends larger;
- paired values (a key that splits the same samples: ``n_segments``, ``k_frac``,
  ``superpixels``, ``method_a``, ``method_b``, ``pair``): the rows are matched by job and
  sample (``n_pairs`` samples with both values), ``diff`` is the mean of the paired
  differences a − b with its Student-t interval, ``p_value`` scipy's two-sided Wilcoxon
  signed-rank test (``statistic`` = W) and ``rank_biserial`` the matched-pairs
  rank-biserial correlation. ``test`` names which.

So ``--compare correct`` answers "do misclassified samples disagree more?": a is
``False`` (misclassified), and a positive ``diff`` / ``rank_biserial`` on a disagreement
metric says yes. p-values are per row, not adjusted for the number of rows.

Values are fetched (O(values) memory), as a rank test needs them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy import Engine

from xaiq.analysis.grouping import resolve_grouping
from xaiq.analysis.intervals import mann_whitney, mean_interval_of, signed_rank, welch_difference
from xaiq.analysis.queries import (
    DISAGREEMENT_KEYS,
    check_group_by,
    check_metrics,
    group_key_values,
    group_sort_key,
    grouped_select,
)
from xaiq.analysis.stats_table import StatsTable
from xaiq.db.errors import QueryError
from xaiq.db.jobs import check_jobs
from xaiq.db.models import Disagreement

COMPARE_COLUMNS = (
    "a",
    "n_a",
    "mean_a",
    "b",
    "n_b",
    "mean_b",
    "test",
    "n_pairs",
    "diff",
    "diff_low",
    "diff_high",
    "statistic",
    "p_value",
    "rank_biserial",
)
MANN_WHITNEY = "Mann-Whitney U"
SIGNED_RANK = "Wilcoxon signed-rank (paired)"
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


def _row_identity(compare: str) -> list[Any]:
    """The columns that identify a row apart from the compared key: job, sample, pair and
    every configuration column the key does not set."""
    d = Disagreement
    own = {
        "pair": ("method_a", "method_b"),
        "method_a": ("method_a",),
        "method_b": ("method_b",),
        "superpixels": ("superpixels",),
        "n_segments": ("n_segments",),
        "k_frac": ("k_frac",),
        "target": ("target_kind",),
    }.get(compare, ())
    names = (
        "job_id",
        "sample_index",
        "method_a",
        "method_b",
        "superpixels",
        "n_segments",
        "k_frac",
        "target_kind",
    )
    return [getattr(d, n) for n in names if n not in own]


def _paired(row: dict[str, Any], a: dict, b: dict) -> None:
    """Fill ``row`` with the paired comparison of the samples present in both levels."""
    common = sorted(set(a) & set(b))
    row["n_pairs"] = len(common)
    if not common:
        return
    d = np.array([a[s] - b[s] for s in common], dtype=np.float64)
    row["diff"] = float(d.mean())
    ci = mean_interval_of(d)
    if ci is not None:
        row["diff_low"], row["diff_high"] = ci
    sr = signed_rank(d)
    if sr is None:  # every pair equal: no evidence of a shift
        row.update(statistic=0.0, p_value=1.0, rank_biserial=0.0)
    else:
        row.update(statistic=sr.statistic, p_value=sr.p_value, rank_biserial=sr.rank_biserial)


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
    cols, base = grouped_select(Disagreement, keys, DISAGREEMENT_KEYS, jobs)
    values = [getattr(Disagreement, m) for m in names]
    ident = _row_identity(compare)
    stmt = base.add_columns(*cols, *ident, *values)
    nk, ni = len(cols), len(ident)
    # group -> level -> {row identity without the compare key: [value per metric]}; rows of
    # two levels with the same identity are the same sample under the same other settings
    acc: dict[tuple, dict[Any, dict[tuple[int, int], list[Any]]]] = {}
    with engine.connect() as conn:
        for raw in conn.execution_options(yield_per=50_000).execute(stmt):
            kv = group_key_values(tuple(raw[:nk]), keys, DISAGREEMENT_KEYS)
            group = tuple(kv[k] for k in grouping.keys)
            by_sample = acc.setdefault(group, {}).setdefault(kv[compare], {})
            by_sample[tuple(raw[nk : nk + ni])] = list(raw[nk + ni :])
    levels = _levels((lv for g in acc.values() for lv in g), compare)
    paired = compare in PAIRED_KEYS
    rows = []
    for group in sorted(acc, key=group_sort_key):
        by_level = acc[group]
        for j, metric in enumerate(names):
            a_map, b_map = (
                {s: v[j] for s, v in by_level.get(lv, {}).items() if v[j] is not None}
                for lv in levels
            )
            a = np.fromiter(a_map.values(), dtype=np.float64, count=len(a_map))
            b = np.fromiter(b_map.values(), dtype=np.float64, count=len(b_map))
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
                "test": SIGNED_RANK if paired else MANN_WHITNEY,
            }
            if paired:
                _paired(row, a_map, b_map)
            elif mean_a is not None and mean_b is not None:
                d = welch_difference(n_a, mean_a, sd_a, n_b, mean_b, sd_b)
                row.update(diff=d.diff, diff_low=d.low, diff_high=d.high)
                mw = mann_whitney(a, b)
                if mw is not None:
                    row.update(statistic=mw.u, p_value=mw.p_value, rank_biserial=mw.rank_biserial)
            rows.append(row)
    title = grouping.title(f"disagreement: {compare} = {levels[0]} (a) vs {levels[1]} (b)")
    columns = [*grouping.keys, "metric", *COMPARE_COLUMNS]
    return StatsTable(rows, columns, title, grouping)


__all__ = ["COMPARE_COLUMNS", "PAIRED_KEYS", "compare_table"]
