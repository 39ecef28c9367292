"""Operating the distributed path for real (PostgreSQL, Redis, `xaiq scheduler`, two `xaiq
worker` subprocesses): task events for Flower, worker names, cancelling and SIGTERM that stop
a running shard within seconds, and an interrupted in-process job resumed on the workers.
One cluster per module; tests run in file order (the SIGTERM test is last: it stops a worker).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import select

from xaiq.db.jobs import job_progress, rows_for
from xaiq.db.models import Shard, ShardStatus, WorkerRow
from xaiq.db.session import get_engine, read_session
from xaiq.scheduler.submit import submit

from .conftest import Cluster, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow]

# one shard of many small batches: long enough to stop in the middle
LONG_SHARD = {
    "kind": "attribution",
    "dataset": "digits",
    "model": "digits-cnn-weak",
    "methods": ["saliency", "integrated_gradients"],
    # long enough (~10 s on an idle 2-core machine) that a stop cannot race the shard's end
    "params": {"integrated_gradients": {"n_steps": 500}},
    "limit": 64,
    "shard_size": 64,
    "batch_size": 2,
}


def _submit(cluster: Cluster, spec: dict) -> int:
    engine = get_engine(cluster.db_url)
    return submit(spec, engine=engine, local=False, broker=cluster.broker_url).job_id


def _progress(cluster: Cluster, job_id: int) -> dict:
    with read_session(get_engine(cluster.db_url)) as session:
        return job_progress(session, job_id)


def _running_mid_shard(cluster: Cluster, job_id: int) -> bool:
    with read_session(get_engine(cluster.db_url)) as session:
        return bool(
            session.scalar(
                select(Shard.id).where(
                    Shard.job_id == job_id,
                    Shard.status == ShardStatus.running,
                    Shard.samples_done > 0,
                )
            )
        )


def _comparable(cluster: Cluster, job_id: int, table: str) -> list[dict]:
    with read_session(get_engine(cluster.db_url)) as session:
        rows = rows_for(session, table, job_id)
    # "reused": a map an earlier job of this module stored is read back, not recomputed
    skip = ("job_id", "artifact", "reused")
    return [{k: v for k, v in r.items() if k not in skip} for r in rows]


def _xaiq(cluster: Cluster, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "xaiq.cli.main", *args],
        env={**cluster.env, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_workers_and_the_scheduler_send_the_events_flower_shows(cluster: Cluster) -> None:
    from xaiq.broker.app import make_app

    app = make_app(cluster.broker_url)
    seen: list[dict] = []
    ready = threading.Event()

    def listen() -> None:
        with app.connection() as conn:
            receiver = app.events.Receiver(conn, handlers={"*": seen.append})
            ready.set()
            with contextlib.suppress(Exception):  # the capture ends on its timeout
                receiver.capture(limit=None, timeout=60, wakeup=True)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10)
    job_id = _submit(cluster, {**LONG_SHARD, "methods": ["saliency"], "params": {}, "limit": 4})

    def got(kind: str) -> bool:
        return any(e.get("type") == kind for e in list(seen))

    wait_for(
        lambda: _progress(cluster, job_id)["finished_at"] is not None and got("task-succeeded"),
        60,
        "the job's task events",
    )
    # heartbeats come every few seconds, not with the tasks: a short job can finish between
    # two of them (it did once in CI), so wait for one rather than expect it already
    wait_for(lambda: got("worker-heartbeat"), 30, "a worker heartbeat (Flower's worker list)")
    types = {e.get("type") for e in list(seen)}
    assert {"task-sent", "task-received", "task-started", "task-succeeded"} <= types
    names = {e.get("name") for e in seen if e.get("type") == "task-received"}
    assert names == {"xaiq.run_shard"}


def test_xaiq_workers_shows_the_name_each_worker_was_given(cluster: Cluster) -> None:
    proc = _xaiq(cluster, "workers", "--json", "--max-age", "10")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    nodes = sorted(r["name"].split("@")[0] for r in json.loads(out))
    assert nodes == ["w1", "w2"]


def test_cancel_stops_a_running_shard_within_seconds_and_keeps_its_batches(
    cluster: Cluster,
) -> None:
    job_id = _submit(cluster, LONG_SHARD)
    wait_for(lambda: _running_mid_shard(cluster, job_id), 120, "the shard to be mid-way")
    started = time.monotonic()
    proc = _xaiq(cluster, "cancel", str(job_id))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    wait_for(lambda: _progress(cluster, job_id)["finished_at"] is not None, 30, "the cancel")
    p = _progress(cluster, job_id)
    assert p["status"] == "cancelled", p
    assert time.monotonic() - started < 30
    assert 0 < p["samples_done"] < 64
    (shard,) = _shard_rows(cluster, job_id)
    assert shard.status == ShardStatus.cancelled and shard.samples_done == p["samples_done"]


def _shard_rows(cluster: Cluster, job_id: int) -> list[Shard]:
    with read_session(get_engine(cluster.db_url)) as session:
        return list(session.scalars(select(Shard).where(Shard.job_id == job_id)))


def test_a_killed_in_process_job_resumes_on_the_workers_with_each_row_once(
    cluster: Cluster,
) -> None:
    # IG at 100 steps: at 500, in-process and worker maps differ in the last bits (noted)
    spec = {**LONG_SHARD, "limit": 24, "shard_size": 8}
    spec["params"] = {"integrated_gradients": {"n_steps": 100}}
    args = ["attribution", "-d", "digits", "-m", "digits-cnn-weak"]
    args += ["--methods", "saliency,integrated_gradients", "--limit", "24"]
    args += ["--shard-size", "8", "--batch-size", "2", "--param"]
    args += ["integrated_gradients.n_steps=100", "--local", "--json"]
    local = _xaiq(cluster, "submit", *args, XAIQ_PROGRESS_SECONDS="0.2", XAIQ_TORCH_THREADS="1")
    engine = get_engine(cluster.db_url)

    def local_job() -> int | None:
        from xaiq.db.models import Job

        with read_session(engine) as session:
            return session.scalar(
                select(Job.id).where(Job.queue == "local").order_by(Job.id.desc()).limit(1)
            )

    wait_for(lambda: local_job() is not None, 60, "the local job")
    job_id = local_job()
    assert job_id is not None
    wait_for(
        lambda: local.poll() is None and _progress(cluster, job_id)["samples_finished"] > 2,
        120,
        "the local job to be mid-way",
    )
    local.kill()
    local.wait(timeout=30)
    resume = _xaiq(cluster, "resume", str(job_id))
    _, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, err
    assert "on queue cpu" in err
    with read_session(engine) as session:
        owners = set(session.scalars(select(Shard.lease_owner).where(Shard.job_id == job_id)))
    reference = _submit(cluster, spec)
    wait_for(lambda: _progress(cluster, reference)["finished_at"] is not None, 180, "reference")
    for table in ("samples", "attributions", "sample_errors"):
        assert _comparable(cluster, job_id, table) == _comparable(cluster, reference, table)
    assert len(_comparable(cluster, job_id, "attributions")) == 48
    assert any(o and o.startswith("celery@") for o in owners)


def test_sigterm_to_a_worker_stops_its_shard_within_seconds_and_nothing_is_lost(
    cluster: Cluster,
) -> None:
    job_id = _submit(cluster, LONG_SHARD)
    engine = get_engine(cluster.db_url)
    wait_for(lambda: _running_mid_shard(cluster, job_id), 120, "the shard to be mid-way")
    with read_session(engine) as session:
        row = session.scalar(select(WorkerRow).where(WorkerRow.current_shard_id.is_not(None)))
    assert row is not None
    victim = next(p for p in cluster.procs if p.poll() is None and p.pid == os.getpgid(row.pid))
    started = time.monotonic()
    os.kill(victim.pid, signal.SIGTERM)  # what `docker stop` sends: to the main process only
    victim.wait(timeout=60)
    stopped_after = time.monotonic() - started
    (shard,) = _shard_rows(cluster, job_id)
    assert shard.status != ShardStatus.done, "the shard ran to its end instead of stopping"
    assert stopped_after < 30
    wait_for(lambda: _progress(cluster, job_id)["finished_at"] is not None, 240, "the job")
    p = _progress(cluster, job_id)
    assert p["status"] == "succeeded", p
    assert [r["sample_index"] for r in _comparable(cluster, job_id, "samples")] == list(range(64))
    assert len(_comparable(cluster, job_id, "attributions")) == 128
    (shard,) = _shard_rows(cluster, job_id)
    assert shard.attempts == 1  # the stopped attempt was not counted
    cluster.worker("w1" if "w1" in " ".join(victim.args) else "w2")
