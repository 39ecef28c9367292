"""``xaiq serve`` over a large synthetic job: the Jobs page and gallery pages, in SQL.

The rows come from :func:`xaiq.analysis.synthetic.insert_synthetic_disagreements` (one
finished job: four methods, six pairs) in a throwaway SQLite file, then ``ANALYZE``; the
app is driven in-process through Starlette's TestClient (HTTP parsing and the templates
included, the network not). Timed, per page, the HTML only (each card's figure is a separate
request the browser makes; maps are drawn one sample at a time, on demand):

- ``/``: the Jobs page (each job's progress: the numbers of ``xaiq status``);
- ``/jobs/J/samples``: the gallery's first page in sample order;
- ``/jobs/J/samples?metric=feature_disagreement&pair=A|B&config=...``: one pair and
  configuration sorted by a stored metric, a page deep in the ordering (page 100);
- the same over ``pair=all`` (the mean over the six pairs per sample) on its first page;
- ``/jobs/J/samples/I``: one sample's page (its rows of every table).

Baseline: one plain aggregate pass over the job's rows (``SELECT count(*), sum(...)``),
the least any page that reads every row would cost. Target: each page <= 1 s (issue 27).
The job's statistics digest and gallery sort keys are built first, as the worker that
finishes a job builds them (``build_digest_quietly``: :mod:`xaiq.analysis.sortkeys`); the
time they took is in each row's note. Rows: 100,000 (quick), or 1,000,000 and 10,000,000
(full: the 10M-row job alone takes about ten minutes to build on this machine).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from bench.common import require
from bench.harness import Context, Row, Target, measure_interleaved, stopwatch


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for n_rows in ctx.pick([100_000], [1_000_000, 10_000_000]):
        rows += _run(ctx, n_rows)
    return rows


def _names(n_rows: int) -> dict[str, str]:
    return {
        "jobs": f"serve: Jobs page, a {n_rows:,}-row job in the store, SQLite",
        "gallery": f"serve: gallery page 1 (sample order), {n_rows:,} rows, SQLite",
        "sorted": f"serve: gallery page 100 sorted by one pair's metric, {n_rows:,} rows, SQLite",
        "mean": f"serve: gallery page 1 sorted by the mean over pairs, {n_rows:,} rows, SQLite",
        "filtered": f"serve: gallery page 10, mean over pairs, label 3 and wrong, {n_rows:,} rows,"
        " SQLite",
        "sample": f"serve: one sample's page, {n_rows:,} rows, SQLite",
    }


def _run(ctx: Context, n_rows: int) -> list[Row]:
    names = _names(n_rows)
    if not any(ctx.wants(n) for n in names.values()):
        return []
    require("xaiq.serve.app", "create_app")
    synthetic = require("xaiq.analysis.synthetic", "insert_synthetic_disagreements")
    digest = require("xaiq.analysis.digest", "build_digest_quietly")
    from sqlalchemy import text

    from xaiq.db.session import get_engine
    from xaiq.serve.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="xaiq-bench-serve-") as tmp:
        engine = get_engine(f"sqlite:///{Path(tmp) / 'serve.db'}", migrate=True)
        with stopwatch() as insert_s:
            job = synthetic.insert_synthetic_disagreements(engine, n_rows, seed=0)
        with stopwatch() as keys_s:
            digest.build_digest_quietly(engine, job)  # as the worker finishing a job does
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
            built = conn.execute(
                text("SELECT count(*) FROM sort_key_index WHERE job_id = :j"), {"j": job}
            ).scalar_one()
        if not built:
            raise RuntimeError("the job's gallery sort keys were not built")
        ctx.log(
            f"serve: {n_rows:,} rows: insert {insert_s():.0f} s, digest + keys {keys_s():.0f} s"
        )
        client = TestClient(create_app(engine))
        pair = "integrated_gradients|grad_cam"
        with engine.connect() as conn:
            sp, n_seg, kf = conn.execute(
                text(
                    "SELECT superpixels, n_segments, k_frac FROM disagreements"
                    " WHERE job_id = :j LIMIT 1"
                ),
                {"j": job},
            ).one()
        config = f"{sp}|{n_seg}|{kf:g}"
        middle = synthetic_samples(n_rows) // 2
        mean = f"/jobs/{job}/samples?metric=feature_disagreement&pair=all&config={config}"
        urls = {
            "jobs": "/",
            "gallery": f"/jobs/{job}/samples",
            "sorted": f"/jobs/{job}/samples?metric=feature_disagreement&pair={pair}"
            f"&config={config}&page=100",
            "mean": mean,
            "filtered": f"{mean}&label=3&correct=no&page=10",
            "sample": f"/jobs/{job}/samples/{middle}",
        }
        out: dict[str, Any] = {}

        def page(key: str) -> Any:
            def fetch() -> None:
                r = client.get(urls[key])
                if r.status_code != 200:
                    raise RuntimeError(f"{urls[key]}: HTTP {r.status_code}: {r.text[:200]}")
                out[key] = len(r.content)

            return fetch

        def scan() -> None:
            with engine.connect() as conn:
                conn.execute(
                    text(
                        "SELECT count(*), sum(feature_disagreement) FROM disagreements"
                        " WHERE job_id = :j"
                    ),
                    {"j": job},
                ).one()

        wanted = [k for k, n in names.items() if ctx.wants(n)]
        fns = {k: page(k) for k in wanted} | {"scan": scan}
        tm = measure_interleaved(fns, warmup=ctx.warmup, reps=ctx.reps, sync=ctx.sync)
        load = os.getloadavg()[0]
        for key in wanted:
            rows.append(
                Row(
                    name=names[key],
                    value=tm[key].median,
                    unit="s",
                    baseline=tm["scan"].median,
                    baseline_name="one aggregate pass (SELECT count, sum)",
                    targets=(Target("<=", 1.0, on="value"),),
                    spread=tm[key].spread,
                    note=f"{urls[key]}; insert {insert_s():.0f} s, digest + sort keys"
                    f" {keys_s():.0f} s; load average {load:.1f}",
                    extra={
                        "seconds": list(tm[key].samples),
                        "baseline_seconds": list(tm["scan"].samples),
                        "bytes": out.get(key),
                    },
                )
            )
        engine.dispose()
    ctx.log(f"serve: {n_rows:,} rows done")
    return rows


def synthetic_samples(n_rows: int) -> int:
    """Samples of a synthetic job of ``n_rows`` rows (six pairs per sample)."""
    return -(-n_rows // 6)
