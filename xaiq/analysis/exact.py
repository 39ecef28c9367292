"""The exact statistics path over disagreement rows, shared by the stats queries
(:mod:`xaiq.analysis.queries`) and the digests built from it (:mod:`xaiq.analysis.digest`).

- PostgreSQL (:func:`stats_sql`): one grouped query, aggregated on the server
  (``stddev_samp``, ``percentile_cont`` = linear interpolation); constant client memory.
- SQLite (:func:`stats_client`): one unsorted streaming query, the values grouped and
  summarised in numpy on the client (:class:`xaiq.analysis.summary.GroupedColumns`).
- Groups that can repeat a sample (:mod:`xaiq.analysis.units`), on both backends
  (:func:`stats_clustered`): the client path with each row's sample, so that ``n`` counts
  distinct samples and the interval is clustered by sample.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, Float, Select, and_, case, func, literal, select, true
from sqlalchemy.dialects.postgresql import ARRAY as PG_ARRAY
from sqlalchemy.dialects.postgresql import array as pg_array
from sqlalchemy.sql.elements import ColumnElement

from xaiq.analysis.intervals import cluster_interval
from xaiq.analysis.summary import QUANTILES, STAT_COLUMNS, GroupedColumns, summarize
from xaiq.db.errors import QueryError
from xaiq.db.models import Disagreement

_CHUNK = 65_536
_MAX_CODED = 256  # more distinct groups than this: fetch the keys themselves


def default_strategy(engine: Engine) -> str:
    return "sql" if engine.dialect.name == "postgresql" else "client"


def exact_groups(
    engine: Engine, cols: list[ColumnElement[Any]], where: ColumnElement[bool], values: list[Any]
) -> list[tuple[tuple, list[dict[str, Any]]]]:
    """The exact path (the backend's default strategy) over the disagreement rows matching
    ``where``, grouped by ``cols``: ``[(raw key, [stats per value column])]``."""
    base = select().select_from(Disagreement).where(where)
    if default_strategy(engine) == "sql":
        return stats_sql(engine, cols, base, values)
    return stats_client(engine, cols, base, values)


def stats_client(
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


def stats_clustered(
    engine: Engine,
    cols: list[ColumnElement[Any]],
    base: Select[Any],
    values: list[Any],
    dataset_code: dict[int, int],
) -> list[tuple[tuple, list[dict[str, Any]]]]:
    """Per group and value column: :data:`STAT_COLUMNS` over the rows (``nulls``, ``std``,
    quantiles), but ``n`` = distinct samples with a value, ``rows`` = values used, and
    ``ci_low``/``ci_high`` the cluster-robust interval of the mean
    (:func:`xaiq.analysis.intervals.cluster_interval`). A sample is ``(dataset,
    sample_index)``; ``dataset_code``: job id -> dataset number."""
    acc = GroupedColumns(1 + len(values))
    nk = len(cols)
    stmt = base.add_columns(*cols, Disagreement.job_id, Disagreement.sample_index, *values)
    key_of = itemgetter(*range(nk)) if nk else (lambda row: ())
    value_of = [itemgetter(nk + 2 + j) for j in range(len(values))]
    with engine.connect() as conn:
        for part in _raw_chunks(conn, stmt, _CHUNK):
            # a sample's id: dataset number in the high bits, index in the low 32 (exact in
            # float64 up to 2**21 datasets)
            sample = (dataset_code[r[nk]] * 2**32 + r[nk + 1] for r in part)
            acc.add(map(key_of, part), len(part), [sample, *(map(v, part) for v in value_of)])
    out = []
    for key, arrays in acc.arrays():
        samples, stats = arrays[0].astype(np.int64), []
        for v in arrays[1:]:
            keep = ~np.isnan(v)
            st = summarize(v[keep], nulls=int(v.size - keep.sum()))
            cm = cluster_interval(v, samples)
            low, high = cm.interval if cm.interval is not None else (None, None)
            st.update(n=cm.units, rows=cm.rows, ci_low=low, ci_high=high)
            stats.append(st)
        out.append(((key,) if nk == 1 else key, stats))
    return out


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


def stats_sql(
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
