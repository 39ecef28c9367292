"""Statistics digests: the exact statistics of a finished job, per cell, kept in the store.

A *cell* is one method pair under one superpixel configuration and one explained class of
one job (``job_id, method_a, method_b, superpixels, n_segments, k_frac, target_kind``): the
finest grouping made only of job-level keys. Once a job has finished its disagreement rows
no longer change, so :func:`build_digest` computes, once, every statistic of
:data:`STAT_COLUMNS` for every metric of every cell with the exact query path of
:mod:`xaiq.analysis.queries` (server-side on PostgreSQL, numpy on SQLite) and stores them in
``stats_digest_cells``.

:func:`digest_groups` then answers a stats query from those rows when every group it asks
for is exactly one cell: grouping by ``pair`` (or ``method_a, method_b``) plus the
configuration keys that vary, which is what :mod:`xaiq.analysis.grouping` asks for by default,
optionally with ``job``, ``model``, ``dataset``. A few hundred rows are read instead of
every value, so the time no longer grows with the number of rows, and the numbers are the
ones the exact path gives (it computed them). Any other grouping (sample-level keys such
as ``label``; groups that pool cells, whose quantiles cannot be merged exactly) and any job
not finished returns ``None``, and the caller runs the exact path.

A digest is valid while its ``finished_at`` equals the job's: a job that runs again (retry,
resume) is unfinished meanwhile and gets a new ``finished_at`` when it ends, so a stale
digest is never read. Built by whoever finalises a job (:func:`build_digest_quietly`) and,
lazily, by the first query that can use it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, case, delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from xaiq.analysis.exact import exact_groups
from xaiq.analysis.summary import STAT_COLUMNS
from xaiq.db.models import (
    METRIC_COLUMNS,
    DigestCell,
    Disagreement,
    Job,
    JobKind,
    StatsDigest,
)

CELL_FIELDS = (
    "job_id",
    "method_a",
    "method_b",
    "superpixels",
    "n_segments",
    "k_frac",
    "target_kind",
)
# the columns a group key may read for a digest to answer it: ``(table, column) -> field``
_FIELD_OF = {
    **{("disagreements", f): f for f in CELL_FIELDS},
    ("jobs", "id"): "job_id",
    ("jobs", "model"): "model",
    ("jobs", "dataset"): "dataset",
}

Cell = tuple[Any, ...]  # values of CELL_FIELDS
Groups = list[tuple[tuple, list[dict[str, Any]]]]


def build_digest(engine: Engine, job_id: int) -> bool:
    """Compute and store the digest of a finished job (replacing any older one); ``False``
    when the job is not finished. Costs one exact stats pass over the job's rows (on SQLite
    a pair at a time, so memory is bounded by the largest pair's values)."""
    with engine.connect() as conn:
        finished = conn.scalar(select(Job.finished_at).where(Job.id == job_id))
        if finished is None:
            return False
        of_job = Disagreement.job_id == job_id
        if engine.dialect.name == "postgresql":  # aggregated on the server: one query
            parts = [of_job]
        else:  # values held in memory: a pair at a time (the pair index finds its rows)
            pairs = conn.execute(
                select(Disagreement.method_a, Disagreement.method_b).where(of_job).distinct()
            ).all()
            parts = [
                of_job & (Disagreement.method_a == a) & (Disagreement.method_b == b)
                for a, b in pairs
            ]
    started = time.perf_counter()
    cell_cols = [getattr(Disagreement, f) for f in CELL_FIELDS[1:]]
    metrics = [getattr(Disagreement, m) for m in METRIC_COLUMNS]
    cells: list[dict[str, Any]] = []
    n_rows = 0
    for where in parts:
        for raw, stats in exact_groups(engine, cell_cols, where, metrics):
            n_rows += stats[0]["n"] + stats[0]["nulls"]
            key = dict(zip(CELL_FIELDS, (job_id, *raw), strict=True))
            for metric, st in zip(METRIC_COLUMNS, stats, strict=True):
                cells.append({**key, "metric": metric, **{c: st[c] for c in STAT_COLUMNS}})
    zero = _zero_map_nulls(engine, job_id, cell_cols)
    for cell in cells:
        counted = zero.get(tuple(cell[f] for f in CELL_FIELDS[1:]))
        cell["zero_map_nulls"] = counted[cell["metric"]] if counted else 0
    seconds = time.perf_counter() - started
    with engine.begin() as conn:
        # the job may have been re-run while we computed: only a digest of what we read
        current = conn.scalar(select(Job.finished_at).where(Job.id == job_id))
        if current != finished:
            return False
        conn.execute(delete(StatsDigest).where(StatsDigest.job_id == job_id))
        conn.execute(delete(DigestCell).where(DigestCell.job_id == job_id))
        conn.execute(
            insert(StatsDigest),
            [{"job_id": job_id, "finished_at": finished, "rows": n_rows, "seconds": seconds}],
        )
        if cells:
            conn.execute(insert(DigestCell), cells)
    return True


def _zero_map_nulls(
    engine: Engine, job_id: int, cell_cols: list[Any]
) -> dict[tuple, dict[str, int]]:
    """Per cell and metric, the NULLs on rows whose ``euclidean`` is NULL too (a zero map):
    one counting query (the NULL reasons of :mod:`xaiq.analysis.stats_table`)."""
    zero = Disagreement.euclidean.is_(None)
    counts = [
        func.count(case((getattr(Disagreement, m).is_(None) & zero, 1))) for m in METRIC_COLUMNS
    ]
    stmt = select(*cell_cols, *counts).where(Disagreement.job_id == job_id).group_by(*cell_cols)
    nk = len(cell_cols)
    with engine.connect() as conn:
        return {
            tuple(row[:nk]): dict(zip(METRIC_COLUMNS, map(int, row[nk:]), strict=True))
            for row in conn.execute(stmt)
        }


def build_digest_quietly(engine: Engine, job_id: int) -> None:
    """After a job was finalised: build its digest if it is a finished disagreement job
    without a valid one, then its gallery sort keys (:mod:`xaiq.analysis.sortkeys`). Never
    raises (the stats fall back to the exact path, the gallery to the result rows)."""
    from xaiq.analysis.sortkeys import build_sort_keys_quietly

    _digest_quietly(engine, job_id)
    build_sort_keys_quietly(engine, job_id)


def _digest_quietly(engine: Engine, job_id: int) -> None:
    with contextlib.suppress(Exception):
        with engine.connect() as conn:
            row = conn.execute(
                select(Job.kind, Job.finished_at, StatsDigest.finished_at)
                .outerjoin(StatsDigest, StatsDigest.job_id == Job.id)
                .where(Job.id == job_id)
            ).first()
        if row is None:
            return
        kind, finished, digested = row
        if kind == JobKind.disagreement and finished is not None and digested != finished:
            build_digest(engine, job_id)


def _fields(cols: Sequence[Any]) -> list[str] | None:
    out = []
    for col in cols:
        table = str(getattr(getattr(col, "table", None), "name", ""))
        field = _FIELD_OF.get((table, str(getattr(col, "key", ""))))
        if field is None:
            return None
        out.append(field)
    return out


def _cells(
    engine: Engine,
    cols: Sequence[Any],
    job_ids: Sequence[int],
    metrics: Sequence[str],
    build: bool,
    dedupe_k_frac: bool = False,
) -> list[tuple[tuple, dict[str, dict[str, Any]]]] | None:
    """``[(raw group key, {metric: digest cell row})]``, one cell per group, or ``None``
    when the digests cannot answer (see :func:`digest_groups`). ``dedupe_k_frac``: of the
    cells that differ only in ``k_frac`` keep the smallest one's (the metrics asked for do
    not depend on it: :mod:`xaiq.analysis.units`)."""
    fields = _fields(cols)
    if fields is None or any(m not in METRIC_COLUMNS for m in metrics):
        return None
    stmt = select(Job.id, Job.finished_at, Job.model, Job.dataset, StatsDigest.finished_at)
    stmt = stmt.outerjoin(StatsDigest, StatsDigest.job_id == Job.id)
    if job_ids:
        stmt = stmt.where(Job.id.in_(list(job_ids)))
    else:
        stmt = stmt.where(Job.kind == JobKind.disagreement)
    with engine.connect() as conn:
        jobs = conn.execute(stmt).all()
    if any(finished is None for _, finished, *_ in jobs):
        return None
    stale = [j for j, finished, _m, _d, digested in jobs if digested != finished]
    if stale:
        if not build:
            return None
        for j in stale:
            try:
                built = build_digest(engine, j)
            except SQLAlchemyError:  # a concurrent build, a read-only store: the exact path
                built = False
            if not built:
                return None
    per_job = {j: {"model": m, "dataset": d} for j, _f, m, d, _g in jobs}
    if not per_job:
        return []
    c = DigestCell
    cell_cols = [getattr(c, f) for f in CELL_FIELDS]
    value_cols = [getattr(c, s) for s in (*STAT_COLUMNS, "zero_map_nulls")]
    with engine.connect() as conn:
        rows = conn.execute(
            select(*cell_cols, c.metric, *value_cols).where(
                c.job_id.in_(list(per_job)), c.metric.in_(list(metrics))
            )
        ).all()
    nc = len(CELL_FIELDS)
    by_cell: dict[Cell, dict[str, dict[str, Any]]] = {}
    for row in rows:
        values = dict(zip((*STAT_COLUMNS, "zero_map_nulls"), row[nc + 1 :], strict=True))
        by_cell.setdefault(tuple(row[:nc]), {})[row[nc]] = values
    if dedupe_k_frac:
        by_cell = _smallest_k_frac(by_cell)
    groups: dict[tuple, dict[str, dict[str, Any]]] = {}
    for cell, stats in by_cell.items():
        values = dict(zip(CELL_FIELDS, cell, strict=True)) | per_job[cell[0]]
        raw = tuple(values[f] for f in fields)
        if raw in groups or len(stats) != len(metrics):
            return None  # a group pooling cells: quantiles need the values themselves
        groups[raw] = stats
    return list(groups.items())


def _smallest_k_frac(by_cell: dict[Cell, Any]) -> dict[Cell, Any]:
    k = CELL_FIELDS.index("k_frac")
    kept: dict[Cell, Cell] = {}
    for cell in by_cell:
        rest = cell[:k] + cell[k + 1 :]
        if rest not in kept or cell[k] < kept[rest][k]:
            kept[rest] = cell
    return {cell: by_cell[cell] for cell in kept.values()}


def digest_groups(
    engine: Engine,
    cols: Sequence[Any],
    job_ids: Sequence[int],
    metrics: Sequence[str],
    *,
    build: bool = True,
    dedupe_k_frac: bool = False,
) -> Groups | None:
    """``[(raw group key, [stats per metric])]`` as the exact path returns them, from the
    digests of ``job_ids`` (all disagreement jobs when empty), or ``None`` when a digest
    cannot answer: a key column that is not job-level, a job not finished, a group holding
    more than one cell. ``build``: build missing or stale digests of finished jobs first.
    ``dedupe_k_frac``: as the exact path, one ``k_frac`` per configuration (metrics that do
    not depend on it)."""
    cells = _cells(engine, cols, job_ids, metrics, build, dedupe_k_frac)
    if cells is None:
        return None
    return [
        (raw, [{k: stats[m][k] for k in STAT_COLUMNS} for m in metrics]) for raw, stats in cells
    ]


def digest_null_counts(
    engine: Engine,
    cols: Sequence[Any],
    job_ids: Sequence[int],
    metrics: Sequence[str],
    *,
    dedupe_k_frac: bool = False,
) -> list[tuple[tuple, list[tuple[int, int]]]] | None:
    """``[(raw group key, [(zero-map NULLs, other NULLs) per metric])]`` from the digests
    (never building one), or ``None`` when they cannot answer (as :func:`digest_groups`, or
    a digest built before the counts were kept)."""
    cells = _cells(engine, cols, job_ids, metrics, build=False, dedupe_k_frac=dedupe_k_frac)
    if cells is None:
        return None
    out = []
    for raw, stats in cells:
        counts = []
        for m in metrics:
            zero = stats[m]["zero_map_nulls"]
            if zero is None:
                return None
            counts.append((int(zero), int(stats[m]["nulls"]) - int(zero)))
        out.append((raw, counts))
    return out
