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
metric says yes.

The unit is the sample (:mod:`xaiq.analysis.units`): where a group pools several rows of
one sample (``--pool``, or a group-by without ``pair``), each sample's values (paired: its
differences) are averaged first, so ``n_a``, ``n_b`` and ``n_pairs`` count samples and every
test sees independent values. ``euclidean`` and ``euclidean_abs`` are compared once per
configuration, not per ``k_frac`` (and not at all by ``--compare k_frac``: they do not
depend on it). ``p_adjusted`` adjusts ``p_value`` over every test of the table (Holm by
default, :mod:`xaiq.analysis.multiplicity`); the title names the method and the count.

Values are fetched (O(values) memory), as a rank test needs them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy import Engine

from xaiq.analysis.grouping import resolve_grouping
from xaiq.analysis.intervals import mann_whitney, mean_interval_of, signed_rank, welch_difference
from xaiq.analysis.multiplicity import adjust_rows, adjustment_note, check_adjust
from xaiq.analysis.queries import (
    DISAGREEMENT_KEYS,
    check_group_by,
    check_metrics,
    group_key_values,
    group_sort_key,
    grouped_select,
)
from xaiq.analysis.stats_table import StatsTable
from xaiq.analysis.units import K_FRAC_FREE, dataset_codes, job_units, metric_sets
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
    "p_adjusted",
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


def _per_sample(values: dict[tuple, float], code: dict[int, int]) -> dict[tuple, float]:
    """Row identity -> value collapsed to sample -> the mean of its values (a sample seen
    under several pooled configurations counts once: :mod:`xaiq.analysis.units`)."""
    sums: dict[tuple, list[float]] = {}
    for ident, v in values.items():
        acc = sums.setdefault((code[ident[0]], ident[1]), [0.0, 0])
        acc[0] += v
        acc[1] += 1
    return {s: total / count for s, (total, count) in sums.items()}


def _paired(row: dict[str, Any], a: dict, b: dict, code: dict[int, int]) -> None:
    """Fill ``row`` with the paired comparison of the samples present in both levels: the
    differences of matched rows, averaged per sample."""
    d_rows = {ident: a[ident] - b[ident] for ident in set(a) & set(b)}
    per_sample = _per_sample(d_rows, code)
    row["n_pairs"] = len(per_sample)
    if not per_sample:
        return
    d = np.array([per_sample[s] for s in sorted(per_sample)], dtype=np.float64)
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
    adjust: str | None = None,
) -> StatsTable:
    """Per group and metric: the two levels of ``key`` compared (module doc), p-values
    adjusted over the table's tests by ``adjust`` (:mod:`xaiq.analysis.multiplicity`,
    default Holm). Raises :class:`QueryError` for an unknown key or adjustment, a key also in
    ``group_by``, or a key that does not take exactly two (non-NULL) values in the
    selection."""
    method = check_adjust(adjust)
    found = check_group_by(key, DISAGREEMENT_KEYS)
    if len(found) != 1:
        raise QueryError(f"--compare needs exactly one key, not {key!r}")
    compare = found[0]
    user = check_group_by(group_by, DISAGREEMENT_KEYS)
    if compare in user:
        raise QueryError(f"--compare {compare}: the key cannot also be a group-by key")
    names = check_metrics(metrics)
    left_out = [m for m in names if compare == "k_frac" and m in K_FRAC_FREE]
    names = [m for m in names if m not in left_out]
    if not names:
        raise QueryError(f"--compare k_frac: {', '.join(left_out)} do not depend on k_frac")
    jobs = check_jobs(engine, job_ids)
    grouping = resolve_grouping(engine, jobs, user, pool=pool, exclude=[compare])
    units = job_units(engine, jobs)
    code = dataset_codes(units)
    keys = [*grouping.keys, compare]
    cols, base = grouped_select(Disagreement, keys, DISAGREEMENT_KEYS, jobs)
    values = [getattr(Disagreement, m) for m in names]
    ident = _row_identity(compare)
    stmt = base.add_columns(*cols, *ident, *values)
    nk, ni = len(cols), len(ident)
    # group -> level -> {row identity without the compare key: [value per metric]}; rows of
    # two levels with the same identity are the same sample under the same other settings
    acc: dict[tuple, dict[Any, dict[tuple, list[Any]]]] = {}
    with engine.connect() as conn:
        for raw in conn.execution_options(yield_per=50_000).execute(stmt):
            kv = group_key_values(tuple(raw[:nk]), keys, DISAGREEMENT_KEYS)
            group = tuple(kv[k] for k in grouping.keys)
            by_sample = acc.setdefault(group, {}).setdefault(kv[compare], {})
            by_sample[tuple(raw[nk : nk + ni])] = list(raw[nk + ni :])
    levels = _levels((lv for g in acc.values() for lv in g), compare)
    paired = compare in PAIRED_KEYS
    # per metric, the groups it is compared in: the distances without k_frac unless it is
    # what tells configurations apart (xaiq.analysis.units.metric_sets)
    shown_keys = {m: grouping.keys for m in names}
    for mset in metric_sets(engine, units, grouping.keys, names):
        for m in mset.metrics:
            shown_keys[m] = [k for k in grouping.keys if k not in mset.dropped]
    cells: dict[tuple[tuple, str], list[dict[tuple, float]]] = {}
    for group, by_level in acc.items():
        kv = dict(zip(grouping.keys, group, strict=True))
        for j, metric in enumerate(names):
            shown = tuple(kv[k] if k in shown_keys[metric] else None for k in grouping.keys)
            pair = cells.setdefault((shown, metric), [{}, {}])
            for side, lv in zip(pair, levels, strict=True):
                for ident_, v in by_level.get(lv, {}).items():
                    if v[j] is not None:
                        side[ident_] = v[j]
    order = {m: i for i, m in enumerate(names)}
    rows = []
    for shown, metric in sorted(cells, key=lambda c: (group_sort_key(c[0]), order[c[1]])):
        a_rows, b_rows = cells[(shown, metric)]
        a_map, b_map = _per_sample(a_rows, code), _per_sample(b_rows, code)
        a = np.fromiter(a_map.values(), dtype=np.float64, count=len(a_map))
        b = np.fromiter(b_map.values(), dtype=np.float64, count=len(b_map))
        n_a, mean_a, sd_a = _stats(a)
        n_b, mean_b, sd_b = _stats(b)
        row: dict[str, Any] = {
            **dict(zip(grouping.keys, shown, strict=True)),
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
            _paired(row, a_rows, b_rows, code)
        elif mean_a is not None and mean_b is not None:
            d = welch_difference(n_a, mean_a, sd_a, n_b, mean_b, sd_b)
            row.update(diff=d.diff, diff_low=d.low, diff_high=d.high)
            mw = mann_whitney(a, b)
            if mw is not None:
                row.update(statistic=mw.u, p_value=mw.p_value, rank_biserial=mw.rank_biserial)
        rows.append(row)
    tests = adjust_rows(rows, method)
    title = grouping.title(f"disagreement: {compare} = {levels[0]} (a) vs {levels[1]} (b)")
    title = f"{title} — {adjustment_note(method, tests)}"
    if left_out:
        title += f" — {', '.join(left_out)} left out: they do not depend on k_frac"
    columns = [*grouping.keys, "metric", *COMPARE_COLUMNS]
    return StatsTable(rows, columns, title, grouping, tests=tests, adjust=method)


__all__ = ["COMPARE_COLUMNS", "PAIRED_KEYS", "compare_table"]
