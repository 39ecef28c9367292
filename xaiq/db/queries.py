"""Read queries: disagreement and attack statistics with group-by from a fixed allowlist.

Group-by keys and metrics are looked up in fixed dicts that map a user's word to a column
expression; nothing a user types ever becomes SQL text. The statistics and their exact
definitions (sample std, linear-interpolation percentiles) are those of
:mod:`xaiq.db.summary`.

Two execution paths give the same numbers (tested against numpy on both backends):

- PostgreSQL: one grouped query, aggregated on the server (``stddev_samp``,
  ``percentile_cont`` = linear interpolation); constant client memory.
- SQLite (no percentile function; its sorter is the bottleneck): one unsorted streaming
  query, the values grouped and summarised in numpy on the client (O(values) memory,
  8 bytes per value; one scan, no SQL sort).

Before either, finished jobs are answered from their stored digests when every group is
one cell (a method pair under one configuration of one job): the statistics the exact path
computed once, at the job's end (:mod:`xaiq.db.digest`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, Float, Select, and_, case, func, literal, select, true
from sqlalchemy.dialects.postgresql import ARRAY as PG_ARRAY
from sqlalchemy.dialects.postgresql import array as pg_array
from sqlalchemy.sql.elements import ColumnElement

from xaiq.db.errors import NotFoundError, QueryError
from xaiq.db.glossary import clip_to_range
from xaiq.db.intervals import mean_interval
from xaiq.db.models import METRIC_COLUMNS, AttackResult, Disagreement, Job, SampleRow
from xaiq.db.summary import QUANTILES, STAT_COLUMNS, GroupedColumns, summarize

DEFAULT_METRICS = ("feature_disagreement", "sign_disagreement", "euclidean", "euclidean_abs")
# the columns of a disagreement statistic: STAT_COLUMNS with the mean's 95% Student-t
# interval (xaiq.db.intervals.mean_interval, from n, mean and std alone) after the mean
DISAGREEMENT_COLUMNS = ("n", "nulls", "mean", "ci_low", "ci_high", *STAT_COLUMNS[3:])
_CHUNK = 65_536
_MAX_CODED = 256  # more distinct groups than this: fetch the keys themselves


@dataclass(frozen=True)
class GroupKey:
    """A group-by word: the columns it reads, the table it needs, how its value prints."""

    columns: tuple[Callable[[], Any], ...]
    needs: str | None = None  # "samples" or "jobs"
    label: Callable[..., Any] | None = None  # combines several columns into one value


def _pair_label(a: str, b: str) -> str:
    return f"{a} vs {b}"


DISAGREEMENT_KEYS: dict[str, GroupKey] = {
    "pair": GroupKey(
        (lambda: Disagreement.method_a, lambda: Disagreement.method_b), label=_pair_label
    ),
    "method_a": GroupKey((lambda: Disagreement.method_a,)),
    "method_b": GroupKey((lambda: Disagreement.method_b,)),
    "label": GroupKey((lambda: SampleRow.label,), "samples"),
    "pred": GroupKey((lambda: SampleRow.pred,), "samples"),
    "correct": GroupKey((lambda: SampleRow.correct,), "samples"),
    "model": GroupKey((lambda: Job.model,), "jobs"),
    "dataset": GroupKey((lambda: Job.dataset,), "jobs"),
    "job": GroupKey((lambda: Disagreement.job_id,)),
    "superpixels": GroupKey((lambda: Disagreement.superpixels,)),
    "n_segments": GroupKey((lambda: Disagreement.n_segments,)),
    "k_frac": GroupKey((lambda: Disagreement.k_frac,)),
    "target": GroupKey((lambda: Disagreement.target_kind,)),  # which class was explained
}

ATTACK_KEYS: dict[str, GroupKey] = {
    "job": GroupKey((lambda: AttackResult.job_id,)),
    "model": GroupKey((lambda: Job.model,), "jobs"),
    "dataset": GroupKey((lambda: Job.dataset,), "jobs"),
    "mode": GroupKey((lambda: AttackResult.mode,)),
    "target": GroupKey((lambda: AttackResult.target,)),
    "label": GroupKey((lambda: SampleRow.label,), "samples"),
    "pred": GroupKey((lambda: SampleRow.pred,), "samples"),
    "correct": GroupKey((lambda: SampleRow.correct,), "samples"),
}


def parse_names(values: str | Iterable[str] | None) -> list[str]:
    """``"a,b"`` or ``["a", "b,c"]`` -> ``["a", "b", "c"]`` (blanks dropped, order kept)."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    return [p.strip() for item in items for p in item.split(",") if p.strip()]


def check_group_by(keys: str | Iterable[str] | None, allowed: dict[str, GroupKey]) -> list[str]:
    names = parse_names(keys)
    for name in names:
        if name not in allowed:
            raise QueryError(f"unknown group-by key {name!r}; known: {', '.join(allowed)}")
    return list(dict.fromkeys(names))


def check_metrics(metrics: str | Iterable[str] | None) -> list[str]:
    """Validated metric names; ``None``/empty -> :data:`DEFAULT_METRICS`, ``all`` -> all ten."""
    names = parse_names(metrics)
    if not names:
        return list(DEFAULT_METRICS)
    if names == ["all"]:
        return list(METRIC_COLUMNS)
    for name in names:
        if name not in METRIC_COLUMNS:
            raise QueryError(f"unknown metric {name!r}; known: all, {', '.join(METRIC_COLUMNS)}")
    return list(dict.fromkeys(names))


def check_jobs(engine: Engine, job_ids: Iterable[int] | None) -> list[int]:
    """The given job ids, each checked to exist (:class:`NotFoundError` names the first not)."""
    ids = [int(j) for j in (job_ids or [])]
    if not ids:
        return []
    with engine.connect() as conn:
        found = set(conn.scalars(select(Job.id).where(Job.id.in_(ids))))
    for j in ids:
        if j not in found:
            raise NotFoundError(f"unknown job id {j}")
    return list(dict.fromkeys(ids))


def varying_config_keys(engine: Engine, job_ids: Iterable[int] | None = None) -> list[str]:
    """Which of ``superpixels``, ``n_segments``, ``k_frac`` take more than one value in these
    jobs' disagreement rows: the keys a per-pair table must add so that it does not mix
    superpixel configurations."""
    jobs = list(job_ids or [])
    out = []
    with engine.connect() as conn:
        for name in ("superpixels", "n_segments", "k_frac"):
            col = getattr(Disagreement, name)
            stmt = select(col).distinct().limit(2)
            if jobs:
                stmt = stmt.where(Disagreement.job_id.in_(jobs))
            if len(conn.execute(stmt).all()) > 1:
                out.append(name)
    return out


def _grouped_select(
    table: Any, keys: list[str], allowed: dict[str, GroupKey], job_ids: list[int]
) -> tuple[list[ColumnElement[Any]], Select[Any]]:
    cols = [c() for k in keys for c in allowed[k].columns]
    stmt = select().select_from(table)
    needs = {allowed[k].needs for k in keys}
    if "samples" in needs:
        stmt = stmt.outerjoin(
            SampleRow,
            (SampleRow.job_id == table.job_id) & (SampleRow.sample_index == table.sample_index),
        )
    if "jobs" in needs:
        stmt = stmt.join(Job, Job.id == table.job_id)
    if job_ids:
        stmt = stmt.where(table.job_id.in_(job_ids))
    return cols, stmt


def _key_values(raw: tuple, keys: list[str], allowed: dict[str, GroupKey]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i = 0
    for k in keys:
        spec = allowed[k]
        part = raw[i : i + len(spec.columns)]
        i += len(spec.columns)
        value = spec.label(*part) if spec.label else part[0]
        out[k] = bool(value) if k == "correct" and value is not None else value
    return out


def _sort_key(raw: tuple) -> tuple:
    return tuple((v is None, v if v is not None else 0) for v in raw)


def disagreement_stats(
    engine: Engine,
    job_ids: Iterable[int] | None = None,
    group_by: str | Iterable[str] | None = ("pair",),
    metrics: str | Iterable[str] | None = None,
    *,
    strategy: str | None = None,
) -> list[dict[str, Any]]:
    """One row per (group, metric): the group's keys, ``metric`` and
    :data:`DISAGREEMENT_COLUMNS` (:data:`STAT_COLUMNS` plus ``ci_low``/``ci_high``, the
    mean's 95% Student-t interval, clipped to the metric's range; NULL when n < 2).

    This groups by exactly the keys given: the pooling rule (configuration keys added
    unless pooling) is :func:`xaiq.db.grouping.resolve_grouping`'s, applied by callers.

    ``job_ids``: restrict to these jobs (each must exist), default all. ``group_by``: words
    of :data:`DISAGREEMENT_KEYS` (``pair`` prints as ``"a vs b"``); empty = one overall
    group. ``metrics``: names of ``METRIC_COLUMNS`` or ``all`` (default
    :data:`DEFAULT_METRICS`). ``strategy``: ``"digest"`` (the stored per-cell statistics of
    finished jobs, :mod:`xaiq.db.digest`), ``"sql"`` (server-side, PostgreSQL only) or
    ``"client"``; default: the digest when it can answer, else per backend as in the module
    docstring.
    """
    keys = check_group_by(group_by, DISAGREEMENT_KEYS)
    names = check_metrics(metrics)
    jobs = check_jobs(engine, job_ids)
    cols, base = _grouped_select(Disagreement, keys, DISAGREEMENT_KEYS, jobs)
    values = [getattr(Disagreement, m) for m in names]
    groups = None
    if strategy in (None, "digest"):
        from xaiq.db.digest import digest_groups

        groups = digest_groups(engine, cols, jobs, names)
        if groups is None and strategy == "digest":
            raise QueryError("no digest can answer this query (see xaiq.db.digest)")
    if groups is None:
        strategy = strategy or _default_strategy(engine)
        if strategy == "sql":
            groups = _stats_sql(engine, cols, base, values)
        elif strategy == "client":
            groups = _stats_client(engine, cols, base, values)
        else:
            raise QueryError(f"unknown stats strategy {strategy!r}; known: digest, sql, client")
    rows: list[dict[str, Any]] = []
    for raw, stats in sorted(groups, key=lambda g: _sort_key(g[0])):
        key_values = _key_values(raw, keys, DISAGREEMENT_KEYS)
        for name, st in zip(names, stats, strict=True):
            ci = mean_interval(st["n"], st["mean"], st["std"])
            low, high = clip_to_range(name, *ci) if ci is not None else (None, None)
            rows.append({**key_values, "metric": name, **st, "ci_low": low, "ci_high": high})
    return rows


def _default_strategy(engine: Engine) -> str:
    return "sql" if engine.dialect.name == "postgresql" else "client"


def exact_groups(
    engine: Engine, cols: list[ColumnElement[Any]], where: ColumnElement[bool], values: list[Any]
) -> list[tuple[tuple, list[dict[str, Any]]]]:
    """The exact path (the backend's default strategy) over the disagreement rows matching
    ``where``, grouped by ``cols``: ``[(raw key, [stats per value column])]``."""
    base = select().select_from(Disagreement).where(where)
    if _default_strategy(engine) == "sql":
        return _stats_sql(engine, cols, base, values)
    return _stats_client(engine, cols, base, values)


def _stats_client(
    engine: Engine,
    cols: list[ColumnElement[Any]],
    base: Select[Any],
    values: list[Any],
    *,
    coded: bool = True,
) -> list[tuple[tuple, list[dict[str, Any]]]]:
    if coded and not cols:
        return _stats_coded(engine, cols, base, values, [()])
    if coded:
        with engine.connect() as conn:
            groups = conn.execute(base.add_columns(*cols).distinct().limit(_MAX_CODED + 1)).all()
        if len(groups) <= _MAX_CODED:
            return _stats_coded(engine, cols, base, values, [tuple(g) for g in groups])
    acc = GroupedColumns(len(values))
    nk = len(cols)
    stmt = base.add_columns(*cols, *values)
    # itemgetter/map per column: several times faster than transposing with zip(*rows)
    key_of = itemgetter(*range(nk)) if nk else (lambda row: ())
    value_of = [itemgetter(nk + j) for j in range(len(values))]
    with engine.connect() as conn:
        for part in _raw_chunks(conn, stmt, _CHUNK):
            acc.add(map(key_of, part), len(part), [map(v, part) for v in value_of])
    if nk == 1:  # itemgetter of one index gives the bare value
        return [((key,), stats) for key, stats in acc.results()]
    return acc.results()


def _stats_coded(
    engine: Engine,
    cols: list[ColumnElement[Any]],
    base: Select[Any],
    values: list[Any],
    groups: list[tuple],
) -> list[tuple[tuple, list[dict[str, Any]]]]:
    """The fast client path for few groups: the database turns each row's group into a small
    integer (a CASE over the distinct groups, values bound as parameters) and NULL into
    +inf, so every fetched value is a number and a chunk becomes one float64 array with one
    ``np.fromiter`` instead of a Python object per cell. (The metrics are bounded, so +inf
    never occurs as a value.)"""
    acc = GroupedColumns(len(values))
    if not groups:
        return []
    whens = []
    for i, g in enumerate(groups):
        conds = [c.is_(None) if v is None else c == v for c, v in zip(cols, g, strict=True)]
        whens.append((and_(true(), *conds), i))
    code = case(*whens, else_=-1) if cols else literal(0)
    inf = literal(float("inf"), Float)
    stmt = base.add_columns(code, *(func.coalesce(v, inf) for v in values))
    width = 1 + len(values)
    with engine.connect() as conn:
        for part in _raw_chunks(conn, stmt, _CHUNK):
            arr = np.fromiter(
                chain.from_iterable(part), dtype=np.float64, count=len(part) * width
            ).reshape(len(part), width)
            vals = arr[:, 1:]
            vals[np.isinf(vals)] = np.nan
            acc.add_coded(groups, arr[:, 0], [vals[:, j] for j in range(len(values))])
    return acc.results()


def _raw_chunks(conn: Connection, stmt: Select[Any], size: int) -> Iterator[Sequence[Any]]:
    """Plain DBAPI tuples of ``stmt``, ``size`` at a time (a server-side cursor on PostgreSQL).

    The hot loop skips SQLAlchemy's Row objects, which cost more than the whole scan here;
    the selected columns (ints, floats, strings, booleans) need no result processing."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    if compiled.positional:
        params = tuple(compiled.params[k] for k in compiled.positiontup or ())
    raw = conn.connection.dbapi_connection
    assert raw is not None
    named = {"name": "xaiq_stats"} if conn.dialect.name == "postgresql" else {}
    cursor = raw.cursor(**named)
    try:
        cursor.execute(str(compiled), params)
        while part := cursor.fetchmany(size):
            yield part
    finally:
        cursor.close()


def _stats_sql(
    engine: Engine, cols: list[ColumnElement[Any]], base: Select[Any], values: list[Any]
) -> list[tuple[tuple, list[dict[str, Any]]]]:
    if engine.dialect.name != "postgresql":
        raise QueryError(f"stats strategy 'sql' needs PostgreSQL, not {engine.dialect.name}")
    aggs: list[Any] = []
    for v in values:
        fractions = pg_array([float(q) for q in QUANTILES])
        aggs += [
            func.count(v),
            func.count() - func.count(v),
            func.avg(v),
            func.stddev_samp(v),
            func.min(v),
            func.max(v),
            func.percentile_cont(fractions, type_=PG_ARRAY(Float)).within_group(v),
        ]
    stmt = base.add_columns(*cols, *aggs)
    if cols:
        stmt = stmt.group_by(*cols)
    nk = len(cols)
    out = []
    with engine.connect() as conn:
        for row in conn.execute(stmt):
            stats = []
            for j in range(len(values)):
                n, nulls, mean, std, lo, hi, qs = row[nk + 7 * j : nk + 7 * (j + 1)]
                p25, med, p75 = qs if qs is not None else (None, None, None)
                stats.append(
                    dict(
                        zip(
                            STAT_COLUMNS,
                            (
                                int(n),
                                int(nulls),
                                _f(mean),
                                _f(std),
                                _f(lo),
                                _f(p25),
                                _f(med),
                                _f(p75),
                                _f(hi),
                            ),
                            strict=True,
                        )
                    )
                )
            out.append((tuple(row[:nk]), stats))
    return out


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


ATTACK_COLUMNS = (
    "n",
    "successes",
    "success_rate",
    "won_by",
    "median_iterations",
    "median_forward_passes",
    "success_l0_mean",
    "success_l2_mean",
    "success_linf_mean",
    "prob_before_mean",
    "prob_after_mean",
)


def attack_stats(
    engine: Engine,
    job_ids: Iterable[int] | None = None,
    group_by: str | Iterable[str] | None = ("job",),
) -> list[dict[str, Any]]:
    """One row per group of attack results with :data:`ATTACK_COLUMNS`.

    ``won_by``: ``"central: 9, rise-least: 1"`` — successes per winning strategy (a success
    with no strategy, i.e. already predicted as the target, counts as ``none``).
    Medians of iterations and forward passes are over all attacked samples (the cost);
    L0/L2/L∞ means over the successful ones (the size of the change that worked), NULL when
    there is none; probability means over all. Medians as in :mod:`xaiq.db.summary`.
    """
    keys = check_group_by(group_by, ATTACK_KEYS)
    jobs = check_jobs(engine, job_ids)
    cols, base = _grouped_select(AttackResult, keys, ATTACK_KEYS, jobs)
    a = AttackResult
    stmt = base.add_columns(
        *cols,
        a.success,
        a.strategy,
        a.iterations,
        a.forward_passes,
        a.l0,
        a.l2,
        a.linf,
        a.prob_before,
        a.prob_after,
    )
    nk = len(cols)
    groups: dict[tuple, list[tuple]] = {}
    with engine.connect() as conn:
        for row in conn.execution_options(stream_results=True).execute(stmt):
            groups.setdefault(tuple(row[:nk]), []).append(tuple(row[nk:]))
    out = []
    for raw in sorted(groups, key=_sort_key):
        rows = groups[raw]
        ok = [r for r in rows if r[0]]
        won: dict[str, int] = {}
        for r in ok:
            won[r[1] or "none"] = won.get(r[1] or "none", 0) + 1
        out.append(
            {
                **_key_values(raw, keys, ATTACK_KEYS),
                "n": len(rows),
                "successes": len(ok),
                "success_rate": len(ok) / len(rows),
                "won_by": ", ".join(f"{k}: {v}" for k, v in sorted(won.items())) or "-",
                "median_iterations": summarize([r[2] for r in rows])["median"],
                "median_forward_passes": summarize([r[3] for r in rows])["median"],
                "success_l0_mean": summarize([r[4] for r in ok])["mean"],
                "success_l2_mean": summarize([r[5] for r in ok])["mean"],
                "success_linf_mean": summarize([r[6] for r in ok])["mean"],
                "prob_before_mean": summarize([r[7] for r in rows])["mean"],
                "prob_after_mean": summarize([r[8] for r in rows])["mean"],
            }
        )
    return out
