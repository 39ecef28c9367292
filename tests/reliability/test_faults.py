"""Faults injected into a real cluster (private PostgreSQL + private Redis, `xaiq scheduler`
and two `xaiq worker` subprocesses, shared by the tests of this module): worker SIGKILL and
SIGTERM mid-shard, Redis and PostgreSQL restarts, a scheduler restart, a shard that crashes its
worker every time. After each, every sample has exactly one row per method / pair or a
recorded error. Each test leaves the cluster running (it restarts what it stopped)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from xaiq.db.jobs import live_workers
from xaiq.db.models import WorkerRow
from xaiq.db.session import dispose_engines, get_engine, read_session
from xaiq.scheduler.submit import submit

from .checks import assert_every_sample_accounted, progress, shards, wait_finished
from .conftest import fresh_pg_database
from .images import digit_image
from .services import PrivatePostgres, PrivateRedis, Procs, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow]

DELAY = "0.12"  # seconds per sample load in the workers: a 6-sample shard takes ~1 s
CRASH_FILE = "crash.png"  # loading this sample ends the worker process (test hook)
WORKERS = ("w1", "w2")

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


@dataclass
class Cluster:
    procs: Procs
    redis: PrivateRedis

    @property
    def db_url(self) -> str:
        return self.procs.db_url


def _start_worker(procs: Procs, name: str) -> None:
    procs.worker(name, XAIQ_TEST_SAMPLE_DELAY=DELAY, XAIQ_TEST_CRASH_KEY=CRASH_FILE)


def _live(procs: Procs) -> list[WorkerRow]:
    with read_session(get_engine(procs.db_url)) as session:
        return live_workers(session, 3.0)


@pytest.fixture(scope="module")
def fault_cluster(
    tmp_path_factory: pytest.TempPathFactory, private_pg: PrivatePostgres
) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("faults")
    redis = PrivateRedis(workdir / "redis")
    redis.start()
    procs = Procs(workdir, fresh_pg_database(private_pg), redis.url())
    try:
        procs.scheduler()
        for name in WORKERS:
            _start_worker(procs, name)
        yield Cluster(procs, redis)
    finally:
        procs.stop_all()
        redis.stop(signal.SIGKILL)
        dispose_engines()


@pytest.fixture
def cluster(fault_cluster: Cluster) -> Cluster:
    """The module's cluster with every process up (a previous test may have stopped one)."""
    procs = fault_cluster.procs
    if procs.procs["scheduler"].poll() is not None:
        procs.scheduler()
    for name in WORKERS:
        if procs.procs[name].poll() is not None:
            _start_worker(procs, name)
    wait_for(lambda: len(_live(procs)) >= len(WORKERS), 120, "the workers", 0.5)
    return fault_cluster


def _submit(cluster: Cluster, spec: dict) -> int:
    engine = get_engine(cluster.db_url)
    return submit(spec, engine=engine, local=False, broker=cluster.procs.broker_url).job_id


def _busy(cluster: Cluster) -> WorkerRow | None:
    return next((w for w in _live(cluster.procs) if w.current_shard_id is not None), None)


def _worker_named(cluster: Cluster, row: WorkerRow) -> str:
    for name in WORKERS:
        proc = cluster.procs.procs[name]
        if proc.poll() is None:
            try:
                if os.getpgid(row.pid) == proc.pid:
                    return name
            except ProcessLookupError:
                continue
    raise AssertionError(f"no live worker process owns pid {row.pid}")


def test_sigkill_of_a_worker_mid_shard_loses_and_duplicates_nothing(cluster: Cluster) -> None:
    job = _submit(cluster, ATTRIBUTION)
    wait_for(lambda: _busy(cluster) is not None, 60, "a shard to start")
    time.sleep(0.4)
    row = _busy(cluster)
    assert row is not None
    victim_shard = row.current_shard_id
    cluster.procs.signal(_worker_named(cluster, row), signal.SIGKILL)
    p = wait_finished(cluster.db_url, job, timeout=120)
    assert p["status"] == "succeeded", p
    counts = assert_every_sample_accounted(cluster.db_url, job, cluster.procs.artifacts)
    assert counts["ok"] == 36 and counts["errors"] == 0
    killed = next(s for s in shards(cluster.db_url, job) if s.id == victim_shard)
    assert killed.status.value == "done" and killed.attempts >= 2


def test_sigterm_stops_a_worker_after_a_batch_and_its_shard_lands_once(cluster: Cluster) -> None:
    # the stopped shard's finished batches are committed and the shard goes back to pending
    # without counting an attempt; a worker finishes it (the last batch of a shard is not
    # interrupted, so a short shard may also simply finish)
    job = _submit(cluster, ATTRIBUTION)
    wait_for(lambda: _busy(cluster) is not None, 60, "a shard to start")
    row = _busy(cluster)
    assert row is not None
    name, shard_id = _worker_named(cluster, row), row.current_shard_id
    proc = cluster.procs.procs[name]
    proc.send_signal(signal.SIGTERM)  # `kill <pid>`: Celery's warm shutdown
    assert proc.wait(timeout=60) == 0
    p = wait_finished(cluster.db_url, job, timeout=120)
    assert p["status"] == "succeeded", p
    assert_every_sample_accounted(cluster.db_url, job, cluster.procs.artifacts)
    finished = next(s for s in shards(cluster.db_url, job) if s.id == shard_id)
    assert finished.status.value == "done" and finished.attempts == 1  # stopped, not failed


@pytest.mark.parametrize("persistent", [True, False], ids=["aof", "messages-lost"])
def test_redis_crash_and_restart_mid_job_loses_and_duplicates_nothing(
    cluster: Cluster, persistent: bool
) -> None:
    job = _submit(cluster, DISAGREEMENT)
    wait_for(lambda: progress(cluster.db_url, job)["shards"]["done"] >= 1, 60, "a shard")
    # without persistence the restarted server comes back empty: every queued message is gone
    # and the scheduler must notice (XAIQ_QUEUED_TIMEOUT, 10 s here) and publish again
    cluster.redis.durable = persistent
    cluster.redis.restart(signal.SIGKILL, down_seconds=2.0)
    cluster.redis.durable = True
    p = wait_finished(cluster.db_url, job, timeout=150)
    assert p["status"] == "succeeded", p
    counts = assert_every_sample_accounted(cluster.db_url, job, cluster.procs.artifacts)
    assert counts["ok"] == 36
    assert all(p.poll() is None for p in cluster.procs.procs.values()), "a process died"
    # the workers reconnected: a job submitted after the restart runs too
    after = _submit(cluster, {**ATTRIBUTION, "limit": 12})
    assert wait_finished(cluster.db_url, after, timeout=90)["status"] == "succeeded"


def test_postgres_restart_mid_job_is_retried_without_lost_rows(
    cluster: Cluster, private_pg: PrivatePostgres
) -> None:
    job = _submit(cluster, DISAGREEMENT)
    wait_for(lambda: progress(cluster.db_url, job)["shards"]["done"] >= 1, 60, "a shard")
    private_pg.restart("immediate", down_seconds=2.0)
    p = wait_finished(cluster.db_url, job, timeout=150)
    assert p["status"] == "succeeded", p
    counts = assert_every_sample_accounted(cluster.db_url, job, cluster.procs.artifacts)
    assert counts["ok"] == 36
    assert all(p.poll() is None for p in cluster.procs.procs.values()), "a process died"


def test_scheduler_killed_and_restarted_resumes_from_the_database(cluster: Cluster) -> None:
    job = _submit(cluster, {**ATTRIBUTION, "limit": 72})  # 12 shards, at most 4 in flight
    wait_for(lambda: progress(cluster.db_url, job)["shards"]["done"] >= 1, 60, "a shard")
    cluster.procs.signal("scheduler", signal.SIGKILL)
    time.sleep(3.0)  # in-flight shards drain; nothing new is published
    stalled = progress(cluster.db_url, job)
    assert stalled["finished_at"] is None and stalled["shards"]["pending"] > 0
    cluster.procs.scheduler()
    p = wait_finished(cluster.db_url, job, timeout=120)
    assert p["status"] == "succeeded", p
    counts = assert_every_sample_accounted(cluster.db_url, job, cluster.procs.artifacts)
    assert counts["ok"] == 72
    assert all(s.attempts == 1 for s in shards(cluster.db_url, job))


def test_a_shard_that_crashes_its_worker_every_time_fails_at_the_attempt_cap(
    cluster: Cluster, tmp_path: Path
) -> None:
    from PIL import Image

    from xaiq.xai.datasets import open_dataset

    folder = tmp_path / "with_crasher"
    folder.mkdir()
    for i in range(11):
        Image.fromarray(digit_image(i)).save(folder / f"img-{i:02d}.png")
    Image.fromarray(digit_image(11)).save(folder / CRASH_FILE)  # a valid image: the hook kills
    dataset = open_dataset(f"folder:{folder}")
    crash_index = next(i for i in range(len(dataset)) if dataset.key(i) == CRASH_FILE)
    spec = {
        **ATTRIBUTION,
        "dataset": f"folder:{folder}",
        "limit": None,
        "shard_size": 3,
        "max_attempts": 2,
    }
    job = _submit(cluster, spec)
    p = wait_finished(cluster.db_url, job, timeout=150)
    assert p["status"] == "partial", p
    all_shards = shards(cluster.db_url, job)
    bad = next(s for s in all_shards if s.start <= crash_index < s.stop)
    assert bad.status.value == "failed" and bad.attempts == 2
    assert bad.error is not None and "failed after 2 attempts" in bad.error
    assert all(s.status.value == "done" for s in all_shards if s is not bad)
    counts = assert_every_sample_accounted(cluster.db_url, job, cluster.procs.artifacts)
    assert counts == {"ok": 9, "errors": 0, "failed_shard_samples": 3}
    time.sleep(3.0)  # no endless loop: the failed shard is not published again
    assert next(s for s in shards(cluster.db_url, job) if s.id == bad.id).attempts == 2
