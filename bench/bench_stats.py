"""Stats query time over synthetic disagreement rows on SQLite and PostgreSQL.

The rows come from :func:`xaiq.db.synthetic.insert_synthetic_disagreements` (1,000,000 in
full mode, 100,000 in quick mode) into a throwaway SQLite file and a throwaway PostgreSQL
database (``XAIQ_BENCH_PG_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``,
is used to create and drop it). After the bulk load the tables are ANALYZEd.

Row per backend: ``disagreement_stats(group_by="pair")`` (n, nulls, mean, std, min,
quartiles, max of the four source metrics per pair) in seconds, against one plain
aggregate pass over the same rows and columns (``SELECT sum(...)``): the floor any grouped
statistic pays. Target: < 2 s (as value); the ratio is informational.
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


def _bench_backend(ctx: Context, url: str, n_rows: int) -> tuple[dict[str, Any], Any, Any]:
    from sqlalchemy import text

    from xaiq.db.session import get_engine

    queries = require("xaiq.db.queries", "disagreement_stats", "DEFAULT_METRICS")
    synthetic = require("xaiq.db.synthetic", "insert_synthetic_disagreements")
    engine = get_engine(url, migrate=True)
    with stopwatch() as insert_s:
        job_id = synthetic.insert_synthetic_disagreements(engine, n_rows, seed=0)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    cols = ", ".join(f"sum({m})" for m in queries.DEFAULT_METRICS)
    scan_sql = text(f"SELECT count(*), {cols} FROM disagreements WHERE job_id = :job")
    out: dict[str, Any] = {}

    def stats() -> None:
        out["groups"] = queries.disagreement_stats(engine, [job_id], group_by="pair")

    def scan() -> None:
        with engine.connect() as conn:
            out["count"] = conn.execute(scan_sql, {"job": job_id}).one()[0]

    tm = measure_interleaved({"stats": stats, "scan": scan}, warmup=1, reps=3)
    info = {
        "insert_seconds": insert_s(),
        "rows_scanned": out["count"],
        "result_rows": len(out["groups"]),
    }
    return info, tm["stats"], tm["scan"]


def run(ctx: Context) -> list[Row]:
    n_rows = ctx.pick(100_000, 1_000_000)
    rows: list[Row] = []
    for backend, make_url in (("SQLite", sqlite_url), ("PostgreSQL", postgres_url)):
        name = f"stats by pair, {n_rows:,} disagreement rows, {backend}"
        if not ctx.wants(name):
            continue
        try:
            with make_url() as url:
                info, t_stats, t_scan = _bench_backend(ctx, url, n_rows)
        except Skip as exc:
            rows.append(Row(name=name, skipped=str(exc)))
            continue
        rows.append(
            Row(
                name=name,
                value=t_stats.median,
                unit="s",
                baseline=t_scan.median,
                baseline_name="one aggregate pass (SELECT sum)",
                targets=(Target("<=", 2.0, on="value"),),
                spread=t_stats.spread,
                note=f"bulk insert took {info['insert_seconds']:.1f} s",
                extra={
                    **info,
                    "seconds": list(t_stats.samples),
                    "baseline_seconds": list(t_scan.samples),
                },
            )
        )
        ctx.log(f"stats: {backend} done")
    return rows
