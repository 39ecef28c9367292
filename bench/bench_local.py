"""Local (in-process) jobs as users run them: the demo, and two jobs sharing the machine.

Every job here runs in its own ``python -m xaiq.cli.main`` / ``python -m xaiq.demo``
subprocess on an embedded SQLite store in a throwaway ``XAIQ_HOME`` (no broker), with the
environment's ``XAIQ_TORCH_THREADS`` removed, so torch threads are sized as users get them
(:mod:`xaiq.worker.cores`).

Rows:
- ``make demo``: wall seconds of ``python -m xaiq.demo`` from start to exit (both jobs,
  stats tables, HTML reports), target <= 60 s (issue 17; full mode only, quick runs a
  20-digit demo as info); one info row per job with the time the demo prints.
- two local jobs at once vs one alone: aggregate throughput (samples/s over both jobs, from
  the first job's submit to the last one's ``finished_at``) against one job alone on the
  same machine. Target >= 0.9 (issue 17: processes that share cores do not collapse).
- the same pair with every process forced to all the cores' threads
  (``XAIQ_TORCH_THREADS`` = cores: what each did before), info: the collapse avoided; full
  mode only (quick mode lists it as skipped: two job processes are most of its time).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.bench_jobs import job_spec
from bench.harness import Context, Row, Skip, Target, Timing, stopwatch

ROOT = Path(__file__).resolve().parent.parent
_ENV_DROP = ("XAIQ_DB_URL", "XAIQ_BROKER_URL", "XAIQ_ARTIFACTS", "XAIQ_TORCH_THREADS")


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["XAIQ_HOME"] = str(home)
    env.update(extra)
    return env


def _start_job(spec_path: Path, home: Path, **extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "xaiq.cli.main", "submit", "disagreement"]
    cmd += ["--spec", str(spec_path), "--json"]
    return subprocess.Popen(
        cmd,
        env=_env(home, **extra),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _span(homes: list[Path]) -> float:
    """Seconds from the first job's submit to the last job's ``finished_at`` (each home
    holds one job; one clock, this machine's)."""
    starts, ends = [], []
    for home in homes:
        with sqlite3.connect(home / "xaiq.sqlite") as conn:
            created, finished, status = conn.execute(
                "SELECT created_at, finished_at, status FROM jobs ORDER BY id DESC LIMIT 1"
            ).fetchone()
        if status != "succeeded":
            raise RuntimeError(f"bench job in {home} ended {status}")
        starts.append(datetime.fromisoformat(created))
        ends.append(datetime.fromisoformat(finished))
    return (max(ends) - min(starts)).total_seconds()


def _run_jobs(tmp: Path, spec_path: Path, n: int, tag: str, **extra: str) -> float:
    homes = [tmp / f"{tag}-{i}" for i in range(n)]
    procs = [_start_job(spec_path, home, **extra) for home in homes]
    for proc in procs:
        _out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            tail = (err.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"local job exited {proc.returncode}: {tail}")
    return _span(homes)


def _sharing_rows(ctx: Context, tmp: Path, warm: bool = False) -> list[Row]:
    """``warm``: a job process ran just before (the demo), so imports and the page cache
    are warm already and the warm-up job is left out."""
    from xaiq.worker.cores import available_cores

    # quick: half the digits; a job's own compute is then about 1 s of its ~10 s of CPU
    # (the rest is the process importing torch, captum and scipy, outside the timed span)
    limit, shard = ctx.pick(64, 640), ctx.pick(16, 64)
    spec_path = tmp / "spec.json"
    spec_path.write_text(json.dumps(job_spec(limit, shard)))
    cores = available_cores()
    reps = ctx.pick(1, 3)
    samples: dict[str, list[float]] = {"alone": [], "two": [], "over": []}
    if not warm:
        _run_jobs(tmp, spec_path, 1, "warm")  # imports, page cache
    for r in range(reps):  # interleaved
        samples["alone"].append(_run_jobs(tmp, spec_path, 1, f"alone{r}"))
        samples["two"].append(_run_jobs(tmp, spec_path, 2, f"two{r}"))
        if not ctx.quick:  # info only: two more job processes, the costliest part of quick
            over = {"XAIQ_TORCH_THREADS": str(cores)}
            samples["over"].append(_run_jobs(tmp, spec_path, 2, f"over{r}", **over))
        ctx.log(f"local: two jobs, repetition {r + 1} of {reps} done")
    alone, two = (Timing(tuple(samples[k])) for k in ("alone", "two"))
    note = f"{limit} digits each, shards of {shard}, 3 methods, {cores} cores"
    extra = {"seconds": samples["two"], "baseline_seconds": samples["alone"]}
    over_name = f"two local jobs at once, {cores} torch threads each (before) vs one alone"
    shared = Row(
        name="two local jobs at once vs one alone (aggregate throughput)",
        value=2 * limit / two.median,
        unit="samples/s",
        baseline=limit / alone.median,
        baseline_name="one job alone",
        targets=(Target(">=", 0.9),),
        spread=two.spread,
        note=note,
        extra=extra,
    )
    if ctx.quick:
        return [shared, Row(name=over_name, skipped="full mode only (info row)")]
    over_t = Timing(tuple(samples["over"]))
    return [
        shared,
        Row(
            name=over_name,
            value=2 * limit / over_t.median,
            unit="samples/s",
            baseline=limit / alone.median,
            baseline_name="one job alone",
            spread=over_t.spread,
            note="every process with all the cores' threads: the oversubscription avoided",
            extra={"seconds": samples["over"], "baseline_seconds": samples["alone"]},
        ),
    ]


_JOB_LINE = re.compile(r"^(disagreement|attack) job \d+: (\w+) in ([0-9.]+) s")


def _demo_rows(ctx: Context, tmp: Path) -> list[Row]:
    limit = ctx.pick(20, None)
    cmd = [sys.executable, "-m", "xaiq.demo"] + (["--limit", str(limit)] if limit else [])
    with stopwatch() as wall:
        proc = subprocess.run(
            cmd,
            env=_env(tmp / "demo"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=3600,
        )
    seconds = wall()
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"demo exited {proc.returncode}: {tail}")
    jobs = {}
    for line in proc.stderr.splitlines():
        m = _JOB_LINE.match(line.strip())
        if m:
            jobs[m.group(1)] = (m.group(2), float(m.group(3)))
    what = f"make demo ({limit} digits)" if limit else "make demo"
    rows = [
        Row(
            name=f"{what}: both jobs, stats, reports",
            value=seconds,
            unit="s",
            targets=() if limit else (Target("<=", 60.0, on="value"),),
            note="wall time of python -m xaiq.demo, start to exit",
            extra={"jobs": jobs},
        )
    ]
    for kind, (status, secs) in jobs.items():
        rows.append(
            Row(
                name=f"{what}: {kind} job",
                value=secs,
                unit="s",
                note=f"{status}; as the demo prints it (submit to finished)",
            )
        )
    return rows


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="xaiq-bench-local-") as name:
        tmp = Path(name)
        demo_ran = False
        for label in ("make demo", "two local jobs"):
            if not ctx.wants(label):
                continue
            started = time.perf_counter()
            try:
                if label == "make demo":
                    rows.extend(_demo_rows(ctx, tmp))
                    demo_ran = True
                else:  # in quick mode the demo's process is the jobs' warm-up
                    rows.extend(_sharing_rows(ctx, tmp, warm=ctx.quick and demo_ran))
            except Skip as exc:
                rows.append(Row(name=label, skipped=str(exc)))
            ctx.log(f"local: {label} took {time.perf_counter() - started:.0f} s")
    return rows
