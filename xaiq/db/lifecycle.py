"""Who runs an in-process job, and what happens when it stops: interrupt, suspend, reap.

An in-process (``local``) job has an owner, the ``host:pid`` of the process running it,
which refreshes ``owner_seen_at`` every few seconds. The owner is gone when its process no
longer exists (same host) or it has not been seen for ``XAIQ_OWNER_STALE_SECONDS`` (default
30). Any command that finds such a job reaps it (:func:`reap_orphans`): its running shards go
back to pending and the job becomes ``interrupted``, to be continued by ``xaiq resume``.

A shard stopped between batches (Ctrl-C, SIGTERM, a cancel) is *suspended*: the rows of the
batches it finished are written, guarded by its lease, and it goes back to pending (or to
cancelled), without counting an attempt. A later run skips the samples whose rows are there
(:func:`committed_samples`), so every row is written exactly once.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from xaiq.db.errors import DbError
from xaiq.db.jobs import RESULT_TABLES, get_job, insert_ignore, rerun_shards
from xaiq.db.models import Job, JobStatus, SampleErrorRow, SampleRow, Shard, ShardStatus, utcnow
from xaiq.db.session import read_session, write_session
from xaiq.db.transitions import move_job, move_shard, reopen_job, shards_update

LOCAL_QUEUE = "local"  # the queue of in-process jobs (xaiq.scheduler.submit.LOCAL_QUEUE)
OPEN = (JobStatus.pending, JobStatus.running)


class OwnerBusyError(DbError):
    """The job is being run by another live process."""


def owner_stale_seconds() -> float:
    return float(os.environ.get("XAIQ_OWNER_STALE_SECONDS", "30"))


def this_owner() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return False
    return True


def owner_alive(owner: str | None, seen_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether ``owner`` (``host:pid``), last seen at ``seen_at``, still runs its job."""
    if not owner:
        return False
    stale = seen_at is None or (now - seen_at).total_seconds() > owner_stale_seconds()
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
        return False
    # alive but silent (stopped with Ctrl-Z, or the pid was reused): trust the clock
    return not stale


def take_job(engine: Engine, job_id: int, owner: str) -> None:
    """Make ``owner`` the owner of an unfinished job (an interrupted one starts running
    again). Raises :class:`OwnerBusyError` when another live process owns it."""
    now = utcnow()
    with write_session(engine) as session:
        job = get_job(session, job_id)
        if job.finished_at is not None:
            return
        if job.owner not in (None, owner) and owner_alive(job.owner, job.owner_seen_at, now):
            raise OwnerBusyError(f"job {job_id} is being run by process {job.owner}")
        _restart(job, now)
        job.owner, job.owner_seen_at = owner, now


def _restart(job: Job, now: dt.datetime) -> None:
    """An interrupted job runs again; its start moves by the time it stood still (from
    ``owner_seen_at``, when it stopped), so that its rate and ETA count running time only."""
    if job.status is not JobStatus.interrupted:
        return
    if job.started_at is not None and job.owner is None and job.owner_seen_at is not None:
        job.started_at += max(now - job.owner_seen_at, dt.timedelta(0))
    reopen_job(job)


def touch_job(engine: Engine, job_id: int, owner: str) -> bool:
    """Refresh ``owner``'s claim on the job; ``False`` when it is no longer the owner."""
    with write_session(engine) as session:
        result = session.execute(
            update(Job).where(Job.id == job_id, Job.owner == owner).values(owner_seen_at=utcnow())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def release_job(
    engine: Engine, job_id: int, owner: str, *, interrupted: bool, shard_owner: str | None = None
) -> None:
    """The owner lets go; with ``interrupted``, an unfinished job becomes ``interrupted`` and
    a shard it left running (stopped mid-batch; leased by ``shard_owner``, or by anyone when
    not given) goes back to pending, its attempt not counted. A shard another live process
    still runs under its lease is left to it (the lease reaper takes it back if it dies)."""
    with write_session(engine) as session:
        job = get_job(session, job_id)
        if job.owner != owner:
            return
        job.owner, job.owner_seen_at = None, utcnow()  # when it stopped (see _restart)
        if interrupted and job.finished_at is None and job.status in OPEN:
            move_job(job, JobStatus.interrupted)
            _shards_back_to_pending(session, job_id, shard_owner)


def _shards_back_to_pending(session: Session, job_id: int, lease_owner: str | None = None) -> int:
    stmt = select(Shard).where(Shard.job_id == job_id, Shard.status == ShardStatus.running)
    if lease_owner is not None:
        stmt = stmt.where(Shard.lease_owner == lease_owner)
    shards = list(session.scalars(stmt))
    for shard in shards:
        move_shard(shard, ShardStatus.pending)
        shard.attempts = max((shard.attempts or 1) - 1, 0)
        shard.lease_owner, shard.lease_expires_at = None, None
    return len(shards)


@dataclass(frozen=True)
class Orphan:
    job_id: int
    owner: str | None
    shards_back: int


def _orphaned(session: Session, job: Job, now: dt.datetime) -> bool:
    if job.owner is not None:
        return not owner_alive(job.owner, job.owner_seen_at, now)
    # no owner recorded: a submit killed before it started running, or a job from before
    # owners existed; orphaned once nothing has touched it for the stale period
    seen = job.owner_seen_at or job.started_at or job.created_at
    if (now - seen).total_seconds() <= owner_stale_seconds():
        return False
    live = session.scalar(
        select(Shard.id)
        .where(Shard.job_id == job.id, Shard.status == ShardStatus.running)
        .where(Shard.lease_expires_at >= now)
        .limit(1)
    )
    return live is None


def reap_orphans(engine: Engine, job_id: int | None = None) -> list[Orphan]:
    """In-process jobs whose owner is gone become ``interrupted``; their running shards go
    back to pending (the dead owner's attempt is not counted). Returns what was reaped."""
    now = utcnow()
    with read_session(engine) as session:
        stmt = select(Job.id).where(
            Job.queue == LOCAL_QUEUE, Job.finished_at.is_(None), Job.status.in_(OPEN)
        )
        if job_id is not None:
            stmt = stmt.where(Job.id == job_id)
        candidates = list(session.scalars(stmt))
    reaped: list[Orphan] = []
    for jid in candidates:
        with write_session(engine) as session:
            job = session.get(Job, jid)
            if job is None or job.finished_at is not None or job.status not in OPEN:
                continue
            if not _orphaned(session, job, now):
                continue
            reaped.append(Orphan(jid, job.owner, _shards_back_to_pending(session, jid)))
            move_job(job, JobStatus.interrupted)
            job.owner = None  # owner_seen_at stays: about when it stopped
    return reaped


def shard_progress(
    engine: Engine,
    shard_id: int,
    owner: str,
    samples_done: int,
    *,
    stage: str | None = None,
    stage_done: dict[str, int] | None = None,
) -> bool:
    """Record a running shard's progress (lease-guarded): its samples done and, when given,
    the stage it is in and each stage's samples (:mod:`xaiq.worker.stages`); returns whether
    the shard should stop: its job was asked to cancel, or ``owner`` lost the lease (the
    shard was given to another process, whose rows will count: this one's would be refused)."""
    values: dict[str, Any] = {"samples_done": samples_done}
    if stage_done is not None:
        values.update(stage=stage, stage_done=dict(stage_done))
    with write_session(engine) as session:
        result = session.execute(
            update(Shard)
            .where(Shard.id == shard_id, Shard.lease_owner == owner)
            .where(Shard.status == ShardStatus.running)
            .values(**values)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return True
        cancel = session.scalar(
            select(Job.cancel_requested)
            .join(Shard, Shard.job_id == Job.id)
            .where(Shard.id == shard_id)
        )
        return bool(cancel)


def committed_samples(engine: Engine, job_id: int, start: int, stop: int) -> set[int]:
    """Sample indices in ``[start, stop)`` that already have their rows (a ``samples`` row
    or a ``sample_errors`` row): written by a suspended run of the shard."""
    found: set[int] = set()
    with read_session(engine) as session:
        for model in (SampleRow, SampleErrorRow):
            found.update(
                session.scalars(
                    select(model.sample_index).where(
                        model.job_id == job_id,
                        model.sample_index >= start,
                        model.sample_index < stop,
                    )
                )
            )
    return found


def suspend_shard(
    engine: Engine,
    shard_id: int,
    owner: str,
    rows: Mapping[str, Sequence[Mapping[str, Any]]],
    samples_done: int,
    *,
    cancelled: bool,
) -> bool:
    """Write the rows of a shard stopped between batches and put it back to pending (or to
    cancelled), its attempt not counted. ``False`` (nothing written) when ``owner`` lost the
    lease."""
    values: dict[str, Any] = {
        "lease_owner": None,
        "lease_expires_at": None,
        "samples_done": samples_done,
        "attempts": Shard.attempts - 1,
        "stage": None,  # not running: its samples done are every stage's
        "stage_done": None,
    }
    if cancelled:
        values["finished_at"] = utcnow()
    to = ShardStatus.cancelled if cancelled else ShardStatus.pending
    with write_session(engine) as session:
        result = session.execute(
            shards_update(ShardStatus.running, to)
            .where(Shard.id == shard_id, Shard.lease_owner == owner)
            .values(**values)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            session.rollback()
            return False
        for table, table_rows in rows.items():
            insert_ignore(session, RESULT_TABLES[table], table_rows)
        return True


def resume_job(engine: Engine, job_id: int, queue: str | None = None) -> int:
    """Make an interrupted (or cancelled/failed/partial) job runnable again: its cancelled
    and failed shards go back to pending; with ``queue`` (``cpu``/``gpu``) it moves to the
    workers. Returns how many shards will run."""
    with write_session(engine) as session:
        job = get_job(session, job_id)
        busy = job.owner is not None and owner_alive(job.owner, job.owner_seen_at, utcnow())
        if job.status in OPEN and busy:
            raise OwnerBusyError(f"job {job_id} is being run by process {job.owner}")
        rerun_shards(session, job_id)
        if queue is not None:
            job.queue = queue
        job.finished_at, job.cancel_requested, job.error = None, False, None
        if job.status is JobStatus.interrupted:
            _restart(job, utcnow())
        else:
            reopen_job(job)
        job.owner, job.owner_seen_at = None, utcnow()
        session.flush()
        unfinished = (ShardStatus.pending, ShardStatus.queued, ShardStatus.running)
        return len(
            list(
                session.scalars(
                    select(Shard.id).where(Shard.job_id == job_id, Shard.status.in_(unfinished))
                )
            )
        )


def job_errors(session: Session, job_id: int, limit: int | None = None) -> list[dict[str, Any]]:
    """What failed in a job: one row per failed shard (its whole sample range lost, with the
    last error) and one per failed sample (stage and message), in sample order."""
    get_job(session, job_id)
    out: list[dict[str, Any]] = []
    for start, stop, error in session.execute(
        select(Shard.start, Shard.stop, Shard.error)
        .where(Shard.job_id == job_id, Shard.status == ShardStatus.failed)
        .order_by(Shard.start)
    ):
        out.append(
            {
                "sample_index": start,
                "key": f"samples {start}..{stop - 1} (whole shard)",
                "stage": "shard",
                "message": error or "",
            }
        )
    stmt = (
        select(
            SampleErrorRow.sample_index,
            SampleErrorRow.key,
            SampleErrorRow.stage,
            SampleErrorRow.message,
        )
        .where(SampleErrorRow.job_id == job_id)
        .order_by(SampleErrorRow.sample_index)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    for index, key, stage, message in session.execute(stmt):
        out.append({"sample_index": index, "key": key, "stage": stage, "message": message})
    out.sort(key=lambda r: r["sample_index"])
    return out[:limit] if limit is not None else out
