"""``xaiq stats disagreement`` as data: the pooling rule, intervals and NULL reasons together.

:func:`disagreement_table` is what the CLI, the report and :mod:`xaiq.results` call: the
group-by keys of :func:`xaiq.analysis.grouping.resolve_grouping`, the statistics of
:func:`xaiq.analysis.queries.disagreement_stats` (with each mean's 95% interval) and, per metric,
why its NULLs are NULL.

NULL reasons follow the metric contract (docs/architecture.md): a NULL ``euclidean`` or
``euclidean_abs`` means one of the two maps is all zero (``zero map``); a NULL top-k or
rank metric means one map has no ranking — all zero (then the euclidean distance is NULL
too: ``zero map``) or of constant magnitude (``constant |map|``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, case, func

from xaiq.analysis.digest import digest_null_counts
from xaiq.analysis.grouping import Grouping, resolve_grouping
from xaiq.analysis.queries import (
    DISAGREEMENT_COLUMNS,
    DISAGREEMENT_KEYS,
    check_metrics,
    disagreement_stats,
    group_key_values,
    grouped_select,
)
from xaiq.analysis.units import K_FRAC_FREE, MetricSet, job_units, metric_sets
from xaiq.db.jobs import check_jobs
from xaiq.db.models import Disagreement

DISTANCES = ("euclidean", "euclidean_abs")


@dataclass(frozen=True)
class StatsTable:
    """Rows (dicts), the columns to show in order, the title, and the grouping used."""

    rows: list[dict[str, Any]]
    columns: list[str]
    title: str
    grouping: Grouping
    tests: int = 0  # p-values in the table (the family adjusted together)
    adjust: str | None = None  # how: xaiq.analysis.multiplicity.ADJUST_METHODS


def null_reasons(
    engine: Engine, job_ids: list[int], keys: list[str], metrics: list[str]
) -> dict[tuple[Any, ...], dict[str, str]]:
    """``{(key values..., metric): "zero map 3, constant |map| 12"}`` for the groups that
    hold NULLs, over the same rows and keys as the statistics (the unit rules of
    :mod:`xaiq.analysis.units`: a dropped key is ``None``): from the digests of finished
    jobs when they can answer (:func:`xaiq.analysis.digest.digest_null_counts`), else one
    grouped counting query (bound columns only)."""
    out: dict[tuple[Any, ...], dict[str, str]] = {}
    units = job_units(engine, job_ids)
    for mset in metric_sets(engine, units, keys, metrics):
        found = _set_reasons(engine, job_ids, mset)
        for key, reason in found.items():
            values = dict(zip(mset.keys, key[:-1], strict=True)) | dict.fromkeys(mset.dropped)
            out[(*(values[k] for k in keys), key[-1])] = reason
    return out


def _set_reasons(
    engine: Engine, job_ids: list[int], mset: MetricSet
) -> dict[tuple[Any, ...], dict[str, str]]:
    keys, metrics = mset.keys, mset.metrics
    cols, base = grouped_select(Disagreement, keys, DISAGREEMENT_KEYS, job_ids)
    if mset.where is not None:
        base = base.where(mset.where)
    if not mset.clustered:  # finished jobs: stored
        counted = digest_null_counts(
            engine, cols, job_ids, metrics, dedupe_k_frac=mset.dedupe_k_frac
        )
        if counted is not None:
            return _reasons(
                ((raw, [n for pair in counts for n in pair]) for raw, counts in counted),
                keys,
                metrics,
            )
    zero = Disagreement.euclidean.is_(None)
    aggs = []
    for m in metrics:
        col = getattr(Disagreement, m)
        aggs.append(func.count(case((col.is_(None) & zero, 1))))
        aggs.append(func.count(case((col.is_(None) & ~zero, 1))))
    stmt = base.add_columns(*cols, *aggs)
    if cols:
        stmt = stmt.group_by(*cols)
    nk = len(cols)
    with engine.connect() as conn:
        rows = [(tuple(row[:nk]), row[nk:]) for row in conn.execute(stmt)]
    return _reasons(rows, keys, metrics)


def _reasons(
    rows: Iterable[tuple[tuple, Sequence[Any]]], keys: list[str], metrics: list[str]
) -> dict[tuple[Any, ...], dict[str, str]]:
    """``rows``: (raw group key, [zero-map NULLs, other NULLs] per metric, flattened)."""
    out: dict[tuple[Any, ...], dict[str, str]] = {}
    for raw, counts in rows:
        kv = group_key_values(raw, keys, DISAGREEMENT_KEYS)
        for j, m in enumerate(metrics):
            z, c = int(counts[2 * j]), int(counts[2 * j + 1])
            parts = ([f"zero map {z}"] if z else []) + ([f"constant |map| {c}"] if c else [])
            if m in DISTANCES and c:  # not possible under the contract: say so plainly
                parts[-1] = f"other {c}"
            if parts:
                out[(*(kv[k] for k in keys), m)] = {"null_reason": ", ".join(parts)}
    return out


def disagreement_table(
    engine: Engine,
    job_ids: Iterable[int] | None = None,
    group_by: str | Iterable[str] | None = ("pair",),
    metrics: str | Iterable[str] | None = None,
    *,
    pool: bool = False,
) -> StatsTable:
    """Statistics per group and metric under the pooling rule, with intervals and NULL
    reasons (module doc). Columns: the keys, ``metric``, :data:`DISAGREEMENT_COLUMNS`,
    ``null_reason``."""
    jobs = check_jobs(engine, job_ids)
    names = check_metrics(metrics)
    grouping = resolve_grouping(engine, jobs, group_by, pool=pool)
    rows = disagreement_stats(engine, jobs, grouping.keys, names)
    if any(r["nulls"] for r in rows):
        reasons = null_reasons(engine, jobs, grouping.keys, names)
    else:
        reasons = {}
    for r in rows:
        key = (*(r[k] for k in grouping.keys), r["metric"])
        r["null_reason"] = reasons.get(key, {}).get("null_reason", "")
    columns = [*grouping.keys, "metric", *DISAGREEMENT_COLUMNS, "null_reason"]
    return StatsTable(rows, columns, unit_title(grouping.title("disagreement"), rows), grouping)


def unit_title(title: str, rows: Sequence[dict[str, Any]]) -> str:
    """``title`` plus what the unit rules did to these rows: ``n`` = distinct samples
    where a group repeats a sample; the distances shown once, without ``k_frac``."""
    notes = []
    if any(r.get("rows", r["n"]) != r["n"] for r in rows):
        notes.append("n = distinct samples (rows = values), intervals clustered by sample")
    free = sorted({r["metric"] for r in rows if r["metric"] in K_FRAC_FREE})
    if free and any("k_frac" in r and r["k_frac"] is None for r in rows if r["metric"] in free):
        notes.append(f"{', '.join(free)} do not depend on k_frac: one row each, k_frac empty")
    return " — ".join([title, *notes])


__all__ = ["StatsTable", "disagreement_table", "null_reasons", "unit_title"]
