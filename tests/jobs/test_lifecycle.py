"""Owners of in-process jobs: who is alive, what is reaped, and what cancel and wait do with
an interrupted job (store-level, fast; the signal tests are in test_interrupt.py)."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys

import pytest
from sqlalchemy import update

from xaiq.cli.main import main
from xaiq.db.lifecycle import (
    OwnerBusyError,
    owner_alive,
    reap_orphans,
    release_job,
    take_job,
    this_owner,
)
from xaiq.db.models import Job, Shard, ShardStatus, utcnow
from xaiq.db.session import get_engine, read_session, write_session
from xaiq.scheduler.submit import submit

SPEC = {
    "kind": "attribution",
    "dataset": "digits",
    "model": "digits-cnn-weak",
    "methods": ["saliency"],
    "limit": 8,
    "shard_size": 4,
}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _job(job_id: int) -> Job:
    with read_session(get_engine()) as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def test_an_owner_is_alive_while_its_process_runs_and_it_keeps_saying_so() -> None:
    now = utcnow()
    host = socket.gethostname()
    assert owner_alive(this_owner(), now, now)
    assert not owner_alive(f"{host}:{_dead_pid()}", now, now)  # same host, process gone
    assert owner_alive("elsewhere:1", now, now)  # another host: trusted while it refreshes
    assert not owner_alive("elsewhere:1", now - dt.timedelta(seconds=600), now)
    assert not owner_alive(None, now, now)


def test_a_job_whose_process_died_is_reaped_to_interrupted_and_its_shard_to_pending(
    home,  # noqa: ANN001
) -> None:
    engine = get_engine()
    job_id = submit(SPEC, local=True).job_id
    ghost = f"{socket.gethostname()}:{_dead_pid()}"
    with write_session(engine) as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(owner=ghost, owner_seen_at=utcnow())
        )
        session.execute(
            update(Shard)
            .where(Shard.job_id == job_id, Shard.index == 0)
            .values(status=ShardStatus.running, attempts=1, lease_owner="local@x:1:1")
        )
    (orphan,) = reap_orphans(engine)
    assert (orphan.job_id, orphan.owner, orphan.shards_back) == (job_id, ghost, 1)
    job = _job(job_id)
    assert job.status.value == "interrupted" and job.owner is None and job.finished_at is None
    with read_session(engine) as session:
        shard = session.query(Shard).filter_by(job_id=job_id, index=0).one()
        assert shard.status is ShardStatus.pending and shard.attempts == 0
    assert reap_orphans(engine) == []  # nothing left to reap


def test_a_live_owner_is_not_reaped_and_nobody_else_can_take_its_job(home) -> None:  # noqa: ANN001
    engine = get_engine()
    job_id = submit(SPEC, local=True).job_id
    take_job(engine, job_id, this_owner())
    assert reap_orphans(engine) == []
    with pytest.raises(OwnerBusyError):
        take_job(engine, job_id, "otherhost:42")
    release_job(engine, job_id, this_owner(), interrupted=True)
    assert _job(job_id).status.value == "interrupted"


def test_cancel_and_wait_work_on_an_interrupted_job(home, capsys) -> None:  # noqa: ANN001
    engine = get_engine()
    job_id = submit(SPEC, local=True).job_id
    take_job(engine, job_id, this_owner())
    release_job(engine, job_id, this_owner(), interrupted=True)
    assert main(["wait", str(job_id)]) == 1  # returns at once, not waiting for nobody
    assert f"xaiq resume {job_id}" in capsys.readouterr().err
    assert main(["cancel", str(job_id)]) == 0
    job = _job(job_id)
    assert job.status.value == "cancelled" and job.finished_at is not None


def test_a_resumed_job_counts_only_its_running_time_for_rate_and_eta(home) -> None:  # noqa: ANN001
    from xaiq.db.lifecycle import resume_job

    engine = get_engine()
    job_id = submit(SPEC, local=True).job_id
    now = utcnow()
    with write_session(engine) as session:  # ran 10 s, then stood still for 90 s
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status="interrupted",
                started_at=now - dt.timedelta(seconds=100),
                owner=None,
                owner_seen_at=now - dt.timedelta(seconds=90),
            )
        )
    assert resume_job(engine, job_id) == 2
    job = _job(job_id)
    assert job.status.value == "running"
    ran = (utcnow() - job.started_at).total_seconds()
    assert 10 <= ran < 20
