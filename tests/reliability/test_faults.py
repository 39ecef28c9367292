"""Faults injected into a real cluster (private PostgreSQL + private Redis, `xaiq scheduler`
and two `xaiq worker` subprocesses): worker SIGKILL/SIGTERM mid-shard, Redis and PostgreSQL
restarts, a scheduler restart, a shard that crashes its worker every time. After each, every
sample has exactly one row per method / pair or a recorded error."""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import select

from xaiq.db.models import WorkerRow
from xaiq.db.session import get_engine, read_session
from xaiq.scheduler.submit import submit

from .checks import assert_every_sample_accounted, progress, shards, wait_finished
from .services import PrivatePostgres, PrivateRedis, Procs, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow]

DELAY = "0.12"  # seconds per sample load in the workers: a 6-sample shard takes ~1 s
ATTRIBUTION = {
    "kind": "attribution",
    "dataset": "digits",
    "model": "digits-cnn",
    "methods": ["saliency", "input_x_gradient"],
    "limit": 36,
    "shard_size": 6,
    "batch_size": 6,
}
DISAGREEMENT = {
    "kind": "disagreement",
    "dataset": "digits",
    "model": "digits-cnn",
    "methods": ["saliency", "grad_cam", "input_x_gradient"],
    "superpixels": ["grid"],
    "n_segments": [16],
    "k_frac": [0.1],
    "limit": 36,
    "shard_size": 6,
    "batch_size": 6,
}


def _submit(procs: Procs, spec: dict) -> int:
    engine = get_engine(procs.db_url)
    return submit(spec, engine=engine, local=False, broker=procs.broker_url).job_id


def _start(procs: Procs, workers: tuple[str, ...] = ("w1", "w2"), **env: str) -> None:
    procs.scheduler()
    for w in workers:
        procs.worker(w, XAIQ_TEST_SAMPLE_DELAY=DELAY, **env)
    wait_for(lambda: len(_live(procs)) >= len(workers), 90, "workers to start", 0.5)


def _live(procs: Procs) -> list[WorkerRow]:
    with read_session(get_engine(procs.db_url)) as session:
        return list(session.scalars(select(WorkerRow)))


def _busy(procs: Procs) -> WorkerRow | None:
    return next((w for w in _live(procs) if w.current_shard_id is not None), None)


def _worker_named(procs: Procs, row: WorkerRow) -> str:
    import os

    for name, proc in procs.procs.items():
        if proc.poll() is None and name.startswith("w"):
            try:
                if os.getpgid(row.pid) == proc.pid:
                    return name
            except ProcessLookupError:
                continue
    raise AssertionError(f"no live worker process owns pid {row.pid}")


def test_sigkill_of_a_worker_mid_shard_loses_and_duplicates_nothing(procs_pg: Procs) -> None:
    _start(procs_pg)
    job = _submit(procs_pg, ATTRIBUTION)
    wait_for(lambda: _busy(procs_pg) is not None, 60, "a shard to start")
    time.sleep(0.4)
    row = _busy(procs_pg)
    assert row is not None
    victim_shard = row.current_shard_id
    procs_pg.signal(_worker_named(procs_pg, row), signal.SIGKILL)
    p = wait_finished(procs_pg.db_url, job, timeout=120)
    assert p["status"] == "succeeded", p
    counts = assert_every_sample_accounted(procs_pg.db_url, job, procs_pg.artifacts)
    assert counts["ok"] == 36 and counts["errors"] == 0
    killed = next(s for s in shards(procs_pg.db_url, job) if s.id == victim_shard)
    assert killed.status.value == "done" and killed.attempts >= 2


def test_sigterm_lets_a_worker_finish_its_shard_and_exit(procs_pg: Procs) -> None:
    _start(procs_pg)
    job = _submit(procs_pg, ATTRIBUTION)
    wait_for(lambda: _busy(procs_pg) is not None, 60, "a shard to start")
    row = _busy(procs_pg)
    assert row is not None
    name, shard_id = _worker_named(procs_pg, row), row.current_shard_id
    procs_pg.procs[name].send_signal(signal.SIGTERM)  # `kill <pid>`: Celery's warm shutdown
    assert procs_pg.procs[name].wait(timeout=60) == 0
    p = wait_finished(procs_pg.db_url, job, timeout=120)
    assert p["status"] == "succeeded", p
    assert_every_sample_accounted(procs_pg.db_url, job, procs_pg.artifacts)
    finished = next(s for s in shards(procs_pg.db_url, job) if s.id == shard_id)
    assert finished.status.value == "done" and finished.attempts == 1  # finished, not redone


@pytest.mark.parametrize("persistent", [True, False], ids=["aof", "messages-lost"])
def test_redis_crash_and_restart_mid_job_loses_and_duplicates_nothing(
    procs_pg: Procs, private_redis: PrivateRedis, persistent: bool
) -> None:
    _start(procs_pg)
    job = _submit(procs_pg, DISAGREEMENT)
    wait_for(lambda: progress(procs_pg.db_url, job)["shards"]["done"] >= 1, 60, "a shard")
    # without persistence the restarted server comes back empty: every queued message is gone
    # and the scheduler must notice (XAIQ_QUEUED_TIMEOUT, 10 s here) and publish again
    private_redis.durable = persistent
    private_redis.restart(signal.SIGKILL, down_seconds=2.0)
    p = wait_finished(procs_pg.db_url, job, timeout=150)
    assert p["status"] == "succeeded", p
    counts = assert_every_sample_accounted(procs_pg.db_url, job, procs_pg.artifacts)
    assert counts["ok"] == 36
    assert all(proc.poll() is None for proc in procs_pg.procs.values()), "a process died"
    # the workers reconnected: a job submitted after the restart runs too
    after = _submit(procs_pg, {**ATTRIBUTION, "limit": 12})
    assert wait_finished(procs_pg.db_url, after, timeout=90)["status"] == "succeeded"


def test_postgres_restart_mid_job_is_retried_without_lost_rows(
    procs_pg: Procs, private_pg: PrivatePostgres
) -> None:
    _start(procs_pg)
    job = _submit(procs_pg, DISAGREEMENT)
    wait_for(lambda: progress(procs_pg.db_url, job)["shards"]["done"] >= 1, 60, "a shard")
    private_pg.restart("immediate", down_seconds=2.0)
    p = wait_finished(procs_pg.db_url, job, timeout=150)
    assert p["status"] == "succeeded", p
    counts = assert_every_sample_accounted(procs_pg.db_url, job, procs_pg.artifacts)
    assert counts["ok"] == 36
    assert all(proc.poll() is None for proc in procs_pg.procs.values()), "a process died"


def test_scheduler_killed_and_restarted_resumes_from_the_database(procs_pg: Procs) -> None:
    _start(procs_pg)
    job = _submit(procs_pg, ATTRIBUTION)
    wait_for(lambda: progress(procs_pg.db_url, job)["shards"]["done"] >= 1, 60, "a shard")
    procs_pg.signal("scheduler", signal.SIGKILL)
    time.sleep(3.0)  # in-flight shards drain; nothing new is published
    stalled = progress(procs_pg.db_url, job)
    assert stalled["finished_at"] is None and stalled["shards"]["pending"] > 0
    procs_pg.scheduler(name="scheduler2")
    p = wait_finished(procs_pg.db_url, job, timeout=120)
    assert p["status"] == "succeeded", p
    counts = assert_every_sample_accounted(procs_pg.db_url, job, procs_pg.artifacts)
    assert counts["ok"] == 36
    assert all(s.attempts == 1 for s in shards(procs_pg.db_url, job))


def test_a_shard_that_crashes_its_worker_every_time_fails_at_the_attempt_cap(
    procs_pg: Procs,
) -> None:
    _start(procs_pg, XAIQ_TEST_CRASH_KEY="digits/8")  # sample 8 kills the process that loads it
    job = _submit(procs_pg, {**ATTRIBUTION, "max_attempts": 2})
    p = wait_finished(procs_pg.db_url, job, timeout=150)
    assert p["status"] == "partial", p
    by_start = {s.start: s for s in shards(procs_pg.db_url, job)}
    bad = by_start[6]
    assert bad.status.value == "failed" and bad.attempts == 2
    assert bad.error is not None and "failed after 2 attempts" in bad.error
    assert all(s.status.value == "done" for s in by_start.values() if s is not bad)
    counts = assert_every_sample_accounted(procs_pg.db_url, job, procs_pg.artifacts)
    assert counts == {"ok": 30, "errors": 0, "failed_shard_samples": 6}
    time.sleep(3.0)  # no endless loop: the failed shard is not published again
    assert next(s for s in shards(procs_pg.db_url, job) if s.start == 6).attempts == 2
