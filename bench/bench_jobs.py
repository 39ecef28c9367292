"""Overhead of the distributed path: one job through Celery + Redis against the same job
in-process, and two workers against one.

Setup: a throwaway PostgreSQL database (the store both paths share), a private Redis db, the
scheduler (default interval: it is woken by submits and finished shards) and two
``xaiq worker -c 1 --threads 1`` subprocesses, both running throughout: a one-worker job goes
to a queue only the first consumes, a two-worker job to the queue both consume, so the three
paths (in-process, one worker, two workers) are timed interleaved. The in-process run uses the
same store and one torch thread too, so both paths do identical compute on one core. Each
path first runs a small untimed job (model load, imports, first-call costs). Timed: from just
before ``submit`` to the job's own ``finished_at`` column (polled every 0.25 s).

Rows: Celery 1 worker vs in-process, seconds (target ratio <= 1.10); 2 workers vs 1,
samples/s (target ratio >= 1.7).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import require
from bench.harness import Context, Row, Skip, Target, Timing
from bench.services import postgres_url, redis_url


def job_spec(limit: int, shard_size: int, seed: int = 0, queue: str = "cpu") -> dict[str, Any]:
    return {
        "kind": "disagreement",
        "queue": queue,
        "dataset": "digits",
        "model": "digits-cnn-weak",
        "methods": ["saliency", "grad_cam", "integrated_gradients"],
        "params": {"integrated_gradients": {"n_steps": 32}},
        "superpixels": ["grid"],
        "n_segments": [49],
        "k_frac": [0.1],
        "limit": limit,
        "shard_size": shard_size,
        "seed": seed,
    }


class Cluster:
    """The scheduler and workers as subprocesses (own process groups, stopped at exit)."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: str, name: str) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        self.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "xaiq.cli.main", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def worker(self, name: str, device: str, queues: str = "cpu") -> None:
        args = ["-c", "1", "--threads", "1", "-Q", queues, "--device", device]
        self.start("worker", *args, "-n", f"{name}@%h", "--loglevel", "WARNING", name=name)

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _wait(predicate: Any, timeout: float, what: str, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


def shard_timeline(engine: Any, job_id: int) -> dict[str, float]:
    """Where a job's wall time went, from its shard rows: ``busy`` = sum of shard compute
    (claim to done), ``wall`` = job created to last shard done, ``idle`` = wall - busy
    (dispatch, queueing, scheduler ticks, finalisation; with several workers busy overlaps)."""
    from sqlalchemy import select

    from xaiq.db.models import Job, Shard
    from xaiq.db.session import read_session

    with read_session(engine) as session:
        job = session.get(Job, job_id)
        shards = list(session.scalars(select(Shard).where(Shard.job_id == job_id)))
    done = [s for s in shards if s.started_at and s.finished_at]
    if job is None or not done:
        return {}
    busy = sum((s.finished_at - s.started_at).total_seconds() for s in done)  # type: ignore[operator]
    wall = (max(s.finished_at for s in done) - job.created_at).total_seconds()  # type: ignore[type-var]
    return {"shards": len(shards), "busy_s": busy, "wall_s": wall, "idle_s": wall - busy}


def run(ctx: Context) -> list[Row]:
    names = ("job via Celery+Redis, 1 worker vs in-process", "job via Celery+Redis, 2 workers vs 1")
    if not any(ctx.wants(n) for n in names):
        return []
    try:
        require("xaiq.scheduler.submit", "submit")
        require("xaiq.worker.local", "run_local")
        require("xaiq.db.jobs", "live_workers")
        broker = redis_url()
        with postgres_url() as db_url, tempfile.TemporaryDirectory(prefix="xaiq-bench-") as tmp:
            return _measure(ctx, names, db_url, broker, Path(tmp))
    except Skip as exc:
        return [Row(name=n, skipped=str(exc)) for n in names]


def _measure(
    ctx: Context, names: tuple[str, str], db_url: str, broker: str, tmp: Path
) -> list[Row]:
    from sqlalchemy import select

    from xaiq.db.jobs import live_workers
    from xaiq.db.models import Job, utcnow
    from xaiq.db.session import get_engine, read_session
    from xaiq.scheduler.submit import submit
    from xaiq.worker.local import run_local

    env = {
        "XAIQ_DB_URL": db_url,
        "XAIQ_BROKER_URL": broker,
        "XAIQ_ARTIFACTS": str(tmp / "art"),
        "XAIQ_HOME": str(tmp / "home"),
        "XAIQ_HEARTBEAT_SECONDS": "1",
        "XAIQ_TORCH_THREADS": "1",  # both paths on one core (run_local would take its share)
    }
    engine = get_engine(db_url, migrate=True)
    # full: the default shard size (64), ten shards; quick: tiny, dominated by fixed costs
    limit, shard = ctx.pick(48, 640), ctx.pick(8, 64)
    reps = ctx.pick(1, 5)  # the job rows are the noisiest: more repetitions for the median
    seed = iter(range(1, 1000))

    timelines: dict[str, list[dict[str, float]]] = {}  # one per timed repetition

    def finished_at(job: int) -> Any:
        with read_session(engine) as session:
            return session.scalar(select(Job.finished_at).where(Job.id == job))

    # Both paths are timed from just before submit to the job's own ``finished_at`` (written
    # by whoever finalised it; one clock, this machine's), not to when this process notices:
    # the distributed path can then be polled slowly, so the observer costs the worker nothing.
    def in_process(n: int, tag: str = "") -> float:
        start = utcnow()
        job = submit(job_spec(n, shard, next(seed)), engine=engine, local=True).job_id
        run_local(job, engine=engine, device=str(ctx.device))
        elapsed = (finished_at(job) - start).total_seconds()
        if tag:
            timelines.setdefault(tag, []).append(shard_timeline(engine, job))
        return elapsed

    def distributed(n: int, tag: str = "", queue: str = "cpu") -> float:
        start = utcnow()
        job = submit(
            job_spec(n, shard, next(seed), queue), engine=engine, local=False, broker=broker
        ).job_id
        _wait(lambda: finished_at(job) is not None, 600, f"job {job}", poll=0.25)
        elapsed = (finished_at(job) - start).total_seconds()
        if tag:
            timelines.setdefault(tag, []).append(shard_timeline(engine, job))
        return elapsed

    def live(n: int) -> bool:
        with read_session(engine) as session:
            return len(live_workers(session, 5.0)) >= n

    logs = tmp / "logs"
    logs.mkdir()
    cluster = Cluster({**os.environ, **env, "XAIQ_TORCH_THREADS": "1"}, logs)
    samples: dict[str, list[float]] = {"local": [], "one": [], "two": []}
    # Both workers run throughout, so the three paths can be timed interleaved (a drift of
    # this host's speed between phases once decided the 2-vs-1 row). A job for one worker
    # goes to the queue only w1 consumes (named "gpu"; here it is just a second routing key,
    # every process computes on ctx.device); a job for two to the queue both consume.
    solo, shared = "gpu", "cpu"
    try:
        with environment(env), torch_threads(1):
            cluster.start(
                "scheduler",
                "--max-in-flight",
                "4",
                "--queues",
                f"{shared},{solo}",
                name="scheduler",
            )
            cluster.worker("w1", str(ctx.device), queues=f"{shared},{solo}")
            cluster.worker("w2", str(ctx.device), queues=shared)
            _wait(lambda: live(2), 120, "two workers", poll=0.5)
            in_process(shard)  # warm-up: model load, first calls
            distributed(shard, queue=solo)
            distributed(limit, queue=shared)  # ten shards: both workers warm up
            for _ in range(reps):  # interleaved
                samples["local"].append(in_process(limit, "local"))
                samples["one"].append(distributed(limit, "one", queue=solo))
                samples["two"].append(distributed(limit, "two", queue=shared))
            ctx.log("jobs: in-process, 1 worker and 2 workers done")
    except RuntimeError as exc:
        raise Skip(f"{exc}; logs in {logs}") from None
    finally:
        cluster.stop()
    local, one, two = (Timing(tuple(samples[k])) for k in ("local", "one", "two"))
    # each repetition ran one worker then two back to back: their ratio, for the note
    paired = sorted(a / b for a, b in zip(samples["one"], samples["two"], strict=True))
    return [
        Row(
            name=names[0],
            value=one.median,
            unit="s",
            baseline=local.median,
            baseline_name="in-process, 1 thread",
            targets=(Target("<=", 1.10),),
            spread=one.spread,
            note=f"{limit} digits, shards of {shard}, 3 methods",
            extra={
                "seconds": list(one.samples),
                "baseline_seconds": list(local.samples),
                "timeline_one_worker": timelines.get("one"),
                "timeline_in_process": timelines.get("local"),
            },
        ),
        Row(
            name=names[1],
            value=limit / two.median,
            unit="samples/s",
            baseline=limit / one.median,
            baseline_name="1 worker",
            targets=(Target(">=", 1.7),),
            spread=two.spread,
            note=(
                f"per-repetition ratios {paired[0]:.2f}-{paired[-1]:.2f}, "
                f"median {paired[len(paired) // 2]:.2f}"
            ),
            extra={
                "paired_ratios": paired,
                "seconds": list(two.samples),
                "baseline_seconds": list(one.samples),
                "timeline_two_workers": timelines.get("two"),
            },
        ),
    ]
