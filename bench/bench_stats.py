"""``xaiq stats disagreement`` over synthetic disagreement rows on SQLite and PostgreSQL.

The rows come from :func:`xaiq.analysis.synthetic.insert_synthetic_disagreements` (one finished
job: four methods, six pairs, NULLs, ties) into a throwaway SQLite file and a throwaway
PostgreSQL database (``XAIQ_BENCH_PG_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``, creates and drops it), then ``ANALYZE``.
The job's statistics digest is then built as the finishing worker builds it
(:func:`xaiq.analysis.digest.build_digest`), timed apart.

Timed: what the command runs, :func:`xaiq.analysis.stats_table.disagreement_table` for the job
with all ten metrics (grouping rule, statistics, 95% intervals, NULL reasons); the job's
digest answers it.

Rows per backend:
- 1,000,000 rows (quick: 50,000): against today's exact path over the same rows (the
  statistics computed from every value: numpy on SQLite, ``percentile_cont`` on PostgreSQL,
  plus the NULL-reason count). Target <= 2 s (issue 5's bound at 1M).
- 10,000,000 rows (full mode only): against one plain aggregate pass over the same rows
  (``SELECT count, sum(...)`` of the ten metrics). Target < 3 s (issue 17). The insert and
  digest-build times are in the note and the JSON.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import require
from bench.harness import Context, Row, Skip, Target, measure_interleaved, stopwatch
from bench.services import postgres_url


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="xaiq-bench-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"


def _load(url: str, n_rows: int) -> tuple[Any, int, dict[str, float]]:
    from sqlalchemy import text

    from xaiq.db.session import get_engine

    synthetic = require("xaiq.analysis.synthetic", "insert_synthetic_disagreements")
    digest = require("xaiq.analysis.digest", "build_digest")
    engine = get_engine(url, migrate=True)
    with stopwatch() as insert_s:
        job_id = synthetic.insert_synthetic_disagreements(engine, n_rows, seed=0)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    with stopwatch() as build_s:
        if not digest.build_digest(engine, job_id):
            raise RuntimeError("the synthetic job is not finished: no digest")
    return engine, job_id, {"insert_seconds": insert_s(), "digest_build_seconds": build_s()}


def _measure(ctx: Context, url: str, n_rows: int, big: bool) -> tuple[dict[str, Any], Any, Any]:
    from sqlalchemy import text

    from xaiq.db.models import METRIC_COLUMNS

    stats_table = require("xaiq.analysis.stats_table", "disagreement_table")
    queries = require("xaiq.analysis.queries", "disagreement_stats")
    engine, job_id, info = _load(url, n_rows)
    out: dict[str, Any] = {}

    def command() -> None:
        table = stats_table.disagreement_table(engine, [job_id], ["pair"], "all")
        out["rows"] = table.rows

    strategy = "sql" if engine.dialect.name == "postgresql" else "client"

    def exact() -> None:
        out["exact"] = queries.disagreement_stats(
            engine, [job_id], ["pair"], "all", strategy=strategy
        )
        out["reasons"] = _count_reasons(engine, job_id)

    cols = ", ".join(f"sum({m})" for m in METRIC_COLUMNS)
    scan_sql = text(f"SELECT count(*), {cols} FROM disagreements WHERE job_id = :job")

    def scan() -> None:
        with engine.connect() as conn:
            out["count"] = conn.execute(scan_sql, {"job": job_id}).one()[0]

    fns = {"command": command, "scan": scan} if big else {"command": command, "exact": exact}
    tm = measure_interleaved(fns, warmup=1, reps=3, sync=ctx.sync)
    info["result_rows"] = len(out["rows"])
    if not big:
        _check_equal(out["rows"], out["exact"])
    base = tm["scan"] if big else tm["exact"]
    return info, tm["command"], base


def _count_reasons(engine: Any, job_id: int) -> Any:
    """The NULL-reason counting query the command runs without a digest."""
    from sqlalchemy import case, func, select

    from xaiq.db.models import METRIC_COLUMNS, Disagreement

    zero = Disagreement.euclidean.is_(None)
    aggs = []
    for m in METRIC_COLUMNS:
        col = getattr(Disagreement, m)
        aggs += [func.count(case((col.is_(None) & zero, 1))), func.count(case((col.is_(None), 1)))]
    stmt = (
        select(Disagreement.method_a, Disagreement.method_b, *aggs)
        .where(Disagreement.job_id == job_id)
        .group_by(Disagreement.method_a, Disagreement.method_b)
    )
    with engine.connect() as conn:
        return conn.execute(stmt).all()


def _check_equal(rows: list[dict[str, Any]], exact: list[dict[str, Any]]) -> None:
    """The command's statistics (from the digest) are today's exact ones: counts and order
    statistics identical, means and standard deviations to 1e-9 (float summation order:
    PostgreSQL's parallel partial sums combine in any order)."""
    import math

    assert len(rows) == len(exact), (len(rows), len(exact))
    for r, e in zip(rows, exact, strict=True):
        for key, want in e.items():
            got = r[key]
            if isinstance(want, float) and key in ("mean", "std", "ci_low", "ci_high"):
                assert math.isclose(got, want, rel_tol=1e-9), (key, got, want)
            else:
                assert got == want, (key, got, want)


def run(ctx: Context) -> list[Row]:
    sizes = [(ctx.pick(50_000, 1_000_000), False)]
    if not ctx.quick:
        sizes.append((10_000_000, True))
    rows: list[Row] = []
    for n_rows, big in sizes:
        for backend, make_url in (("SQLite", sqlite_url), ("PostgreSQL", postgres_url)):
            name = f"xaiq stats disagreement, all ten metrics, {n_rows:,} rows, {backend}"
            if not ctx.wants(name):
                continue
            try:
                with make_url() as url:
                    info, t_cmd, t_base = _measure(ctx, url, n_rows, big)
            except Skip as exc:
                rows.append(Row(name=name, skipped=str(exc)))
                continue
            except AssertionError as exc:  # the digest's numbers differ from the exact path
                rows.append(Row(name=name, error=f"digest != exact path: {exc}"))
                continue
            limit = 3.0 if big else 2.0
            base_name = "one aggregate pass (SELECT sum)" if big else "today's exact path"
            rows.append(
                Row(
                    name=name,
                    value=t_cmd.median,
                    unit="s",
                    baseline=t_base.median,
                    baseline_name=base_name,
                    targets=(Target("<=", limit, on="value"),),
                    spread=t_cmd.spread,
                    note=(
                        f"insert {info['insert_seconds']:.0f} s, digest build (once, at the "
                        f"job's end) {info['digest_build_seconds']:.1f} s"
                    ),
                    extra={
                        **info,
                        "seconds": list(t_cmd.samples),
                        "baseline_seconds": list(t_base.samples),
                    },
                )
            )
            ctx.log(f"stats: {n_rows:,} rows on {backend} done")
    return rows
