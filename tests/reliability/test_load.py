"""Load: four concurrent submitter processes and two workers, on SQLite (no "database is
locked") and on PostgreSQL; and 10,000 one-sample shards through the queue without loss."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from xaiq.db.models import Job, SampleRow, Shard, ShardStatus, WorkerRow
from xaiq.db.session import get_engine, read_session
from xaiq.scheduler.submit import submit

from .checks import assert_every_sample_accounted, wait_finished
from .services import PrivateRedis, Procs, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow]

SUBMITTER = """
import json, sys
from xaiq.scheduler.submit import submit
ids = []
for i in range(int(sys.argv[1])):
    spec = {"kind": "attribution", "dataset": "digits", "model": "digits-cnn",
            "methods": ["saliency"], "limit": 6, "shard_size": 2, "seed": i,
            "priority": i % 3}
    ids.append(submit(spec, local=False).job_id)
print(json.dumps(ids))
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def load_procs(
    request: pytest.FixtureRequest, tmp_path: Path, private_redis: PrivateRedis
) -> Iterator[Procs]:
    if request.param == "sqlite":
        db_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
        get_engine(db_url)  # creates and migrates the embedded store
    else:
        db_url = request.getfixturevalue("pg_db")
    procs = Procs(tmp_path, db_url, private_redis.url())
    try:
        yield procs
    finally:
        procs.stop_all()


def test_four_concurrent_submitters_and_two_workers_lose_nothing(load_procs: Procs) -> None:
    procs = load_procs
    procs.scheduler(max_in_flight=4)
    procs.worker("w1")
    procs.worker("w2")
    submitters = [
        subprocess.Popen(
            [sys.executable, "-c", SUBMITTER, "4"],
            env=procs.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=procs.workdir,
        )
        for _ in range(4)
    ]
    ids: list[int] = []
    errors = ""
    for proc in submitters:
        out, err = proc.communicate(timeout=300)
        errors += err
        assert proc.returncode == 0, err
        ids += json.loads(out)
    assert len(set(ids)) == 16
    for job in ids:
        assert wait_finished(procs.db_url, job, timeout=240)["status"] == "succeeded"
        counts = assert_every_sample_accounted(procs.db_url, job, procs.artifacts)
        assert counts["ok"] == 6
    text = procs.all_logs() + errors
    assert "database is locked" not in text
    assert "Traceback" not in text, text[-3000:]


@pytest.mark.timeout(1500)
def test_ten_thousand_one_sample_shards_pass_through_the_queue_without_loss(
    tmp_path: Path, pg_db: str, private_redis: PrivateRedis
) -> None:
    n_jobs, per_job = 10, 1000
    procs = Procs(tmp_path, pg_db, private_redis.url(), XAIQ_QUEUED_TIMEOUT="600")
    try:
        # a slower tick with more in flight: each tick scans the pending shards
        procs.scheduler(max_in_flight=64, interval=0.5)
        for name in ("w1", "w2"):  # two processes each: DB round trips overlap; no per-task log
            procs.worker(name, concurrency=2, loglevel="WARNING")
        engine = get_engine(pg_db)

        def live_processes() -> int:
            with read_session(engine) as session:
                return int(session.scalar(select(func.count()).select_from(WorkerRow)) or 0)

        wait_for(lambda: live_processes() >= 4, 120, "four worker processes", 0.5)
        spec = {
            "kind": "attribution",
            "dataset": "digits",
            "model": "digits-cnn",
            "methods": ["saliency"],
            "limit": per_job,
            "shard_size": 1,
            "batch_size": 1,
        }
        started = time.monotonic()
        ids = [
            submit({**spec, "seed": i}, engine=engine, local=False, broker=procs.broker_url).job_id
            for i in range(n_jobs)
        ]

        def finished() -> int:  # one cheap query every 2 s: the test must not be the load
            with read_session(engine) as session:
                return int(
                    session.scalar(
                        select(func.count())
                        .select_from(Job)
                        .where(Job.id.in_(ids), Job.finished_at.is_not(None))
                    )
                    or 0
                )

        wait_for(lambda: finished() == n_jobs, 1200, "10,000 shards", step=2.0)
        elapsed = time.monotonic() - started
        for job in ids:
            assert wait_finished(pg_db, job, timeout=5)["status"] == "succeeded"
        with read_session(engine) as session:
            done = session.scalar(
                select(func.count())
                .select_from(Shard)
                .where(Shard.job_id.in_(ids), Shard.status == ShardStatus.done)
            )
            samples = session.scalar(
                select(func.count()).select_from(SampleRow).where(SampleRow.job_id.in_(ids))
            )
            extra_attempts = session.scalar(
                select(func.count())
                .select_from(Shard)
                .where(Shard.job_id.in_(ids), Shard.attempts != 1)
            )
            n_jobs_found = session.scalar(select(func.count()).select_from(Job))
        assert n_jobs_found == n_jobs
        assert done == samples == n_jobs * per_job
        assert extra_attempts == 0
        for job in ids:
            assert assert_every_sample_accounted(pg_db, job)["ok"] == per_job
        print(f"\n10,000 shards: {elapsed:.1f} s, {n_jobs * per_job / elapsed:.0f} shards/s")
    finally:
        procs.stop_all()
