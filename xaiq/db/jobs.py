"""Writes and reads for jobs, shards, leases and heartbeats (the job system's store API).

Every result write is idempotent (insert-or-ignore on the schema's unique keys) and a shard's
rows land in the same transaction that marks it done, guarded by the lease: a worker whose
lease was taken over writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Table, UniqueConstraint, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from xaiq.db.errors import NotFoundError
from xaiq.db.models import (
    AttackResult,
    AttackStrategyResult,
    Attribution,
    Base,
    Disagreement,
    Faithfulness,
    Heartbeat,
    Job,
    JobKind,
    JobStatus,
    JobTag,
    SampleErrorRow,
    SampleRow,
    SanityCheck,
    Shard,
    ShardStatus,
    WorkerRow,
    utcnow,
)
from xaiq.db.pins import add_pins
from xaiq.db.session import write_session
from xaiq.db.transitions import (
    expired_lease_status,
    lease_expired,
    move_job,
    move_shard,
    reopen_job,
    settle_expired_lease,
    shards_update,
)

IN_FLIGHT = (ShardStatus.queued, ShardStatus.running)
UNFINISHED = (ShardStatus.pending, ShardStatus.queued, ShardStatus.running)
RESULT_TABLES: dict[str, type[Base]] = {
    "samples": SampleRow,
    "attributions": Attribution,
    "disagreements": Disagreement,
    "attack_results": AttackResult,
    "attack_strategy_results": AttackStrategyResult,
    "faithfulness": Faithfulness,
    "sanity_checks": SanityCheck,
    "sample_errors": SampleErrorRow,
}


@dataclass(frozen=True)
class Claim:
    """A shard leased to ``owner``: what the shard function needs to run it."""

    shard_id: int
    job_id: int
    kind: str
    spec: dict[str, Any]
    start: int
    stop: int
    attempt: int
    owner: str
    # samples reported done before this claim (a suspended or crashed run); None or 0: no
    # earlier run of this shard can have committed rows
    samples_done: int | None = None


def insert_ignore(session: Session, model: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` into ``model``'s table, skipping rows that hit a unique key."""
    if not rows:
        return
    table: Table = model.__table__  # type: ignore[assignment]
    name = session.get_bind().dialect.name
    stmt: Any
    if name == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing()
    elif name == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - other dialects are not supported targets
        raise NotImplementedError(f"insert-or-ignore is not implemented for {name}")
    session.execute(stmt, [dict(r) for r in rows])


def create_job(
    engine: Engine,
    *,
    kind: str,
    spec: Mapping[str, Any],
    ranges: Sequence[tuple[int, int]],
    queue: str,
    name: str | None = None,
    tags: Sequence[str] = (),
    protocol: Mapping[str, Any] | None = None,
    pins: Sequence[tuple[str, str]] = (),
) -> int:
    """Commit a job, its shards (contiguous ``[start, stop)`` ranges), its ``name`` and
    ``tags`` (labels, checked by :func:`xaiq.scheduler.labels.check_labels`), its protocol
    card and the ``pins`` ``(key, fingerprint)`` of its samples ``0..`` (:mod:`xaiq.db.pins`);
    returns the job id."""
    with write_session(engine) as session:
        job = Job(
            kind=JobKind(kind),  # status: pending, the column default
            spec=dict(spec),
            dataset=spec["dataset"],
            model=spec["model"],
            priority=int(spec.get("priority", 0)),
            seed=int(spec.get("seed", 0)),
            queue=queue,
            n_samples=sum(b - a for a, b in ranges),
            shard_size=int(spec.get("shard_size", 1)),
            name=name,
            protocol=dict(protocol) if protocol is not None else None,
        )
        session.add(job)
        session.flush()
        session.add_all(JobTag(job_id=job.id, tag=t) for t in dict.fromkeys(tags))
        session.add_all(
            Shard(job_id=job.id, index=i, start=a, stop=b, attempts=0)  # pending
            for i, (a, b) in enumerate(ranges)
        )
        add_pins(session, job.id, pins)
        return int(job.id)


JOB_ID_MAX = 2**31 - 1  # ids are 32-bit integers on PostgreSQL


def get_job(session: Session, job_id: int) -> Job:
    if not 1 <= job_id <= JOB_ID_MAX:  # a larger number cannot be an id (nor be bound)
        raise NotFoundError(f"no job with id {job_id}")
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"no job with id {job_id}")
    return job


def check_jobs(engine: Engine, job_ids: Iterable[int] | None) -> list[int]:
    """The given job ids, each checked to exist (:class:`NotFoundError` names the first not)."""
    ids = [int(j) for j in (job_ids or [])]
    if not ids:
        return []
    with engine.connect() as conn:
        found = set(conn.scalars(select(Job.id).where(Job.id.in_(ids))))
    for j in ids:
        if j not in found:
            raise NotFoundError(f"unknown job id {j}")
    return list(dict.fromkeys(ids))


def claim_shard(
    engine: Engine, shard_id: int, owner: str, lease_seconds: float, *, from_pending: bool = False
) -> Claim | None:
    """Take the lease on a shard that is queued (or ``pending`` when ``from_pending``), or
    running with an expired lease. ``None`` when it is done, cancelled, failed or leased."""
    now = utcnow()
    states = [ShardStatus.queued] + ([ShardStatus.pending] if from_pending else [])
    with write_session(engine) as session:
        shard = session.get(Shard, shard_id)
        if shard is None:
            return None
        job = session.get(Job, shard.job_id)
        expired = lease_expired(shard, now)
        if expired and expired_lease_status(shard, job) is not ShardStatus.pending:
            # a redelivered message of a shard whose worker died on its last attempt, or of
            # a job being cancelled: settled as the lease reaper would, never run again
            settle_expired_lease(shard, job, now)
            return None
        if job is None or job.cancel_requested:
            # a shard running under a live lease finishes its attempt; the rest stop here
            if shard.status in (ShardStatus.pending, ShardStatus.queued):
                move_shard(shard, ShardStatus.cancelled)
            return None
        if shard.status not in states and not expired:
            return None
        move_shard(shard, ShardStatus.running)  # an expired lease: running -> running
        shard.lease_owner = owner
        shard.lease_expires_at = now + dt.timedelta(seconds=lease_seconds)
        shard.attempts = (shard.attempts or 0) + 1
        shard.started_at = now
        if job.status is JobStatus.pending:
            move_job(job, JobStatus.running)
            job.started_at = now
        return Claim(
            shard_id=shard.id,
            job_id=job.id,
            kind=job.kind.value,
            spec=dict(job.spec),
            start=shard.start,
            stop=shard.stop,
            attempt=shard.attempts,
            owner=owner,
            samples_done=shard.samples_done,
        )


def renew_lease(engine: Engine, shard_id: int, owner: str, lease_seconds: float) -> bool:
    """Extend ``owner``'s lease; False when the lease was lost."""
    with write_session(engine) as session:
        result = session.execute(
            update(Shard)
            .where(Shard.id == shard_id, Shard.lease_owner == owner)
            .where(Shard.status == ShardStatus.running)
            .values(lease_expires_at=utcnow() + dt.timedelta(seconds=lease_seconds))
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def complete_shard(
    engine: Engine, claim: Claim, rows: Mapping[str, Sequence[Mapping[str, Any]]]
) -> bool:
    """Write every result row of the shard and mark it done in one transaction.

    ``rows`` maps a table name of :data:`RESULT_TABLES` to row dicts. Returns False (and
    writes nothing) when ``claim.owner`` no longer holds the lease.
    """
    with write_session(engine) as session:
        result = session.execute(
            shards_update(ShardStatus.running, ShardStatus.done)
            .where(Shard.id == claim.shard_id, Shard.lease_owner == claim.owner)
            .values(finished_at=utcnow(), lease_expires_at=None)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            session.rollback()
            return False
        for table, table_rows in rows.items():
            insert_ignore(session, RESULT_TABLES[table], table_rows)
        return True


def store_safe(text: str | None) -> str | None:
    """``text`` that every store accepts: lone surrogates (a non-UTF-8 file name) and NUL
    characters (refused by PostgreSQL) become backslash escapes."""
    if text is None:
        return None
    try:  # a file name decoded with surrogateescape shows its original bytes: caf\xe9.png
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00")


def complete_shard_by_sample(
    engine: Engine,
    claim: Claim,
    rows: Mapping[str, Sequence[Mapping[str, Any]]],
    is_permanent: Any = None,
) -> bool:
    """:func:`complete_shard` for rows that could not be written together: each sample's rows
    go in their own savepoint, and a sample whose rows the store refuses (a value it cannot
    hold) becomes a ``sample_errors`` row (stage ``store``) instead. One bad sample costs that
    sample, never the shard. ``is_permanent(exc)``: which errors are the row's fault (default:
    every error); any other error (the store itself failing) is raised and nothing is written.
    """
    by_sample: dict[int, dict[str, list[Mapping[str, Any]]]] = {}
    errors: dict[int, dict[str, Any]] = {}
    for table, table_rows in rows.items():
        for r in table_rows:
            if table == "sample_errors":
                errors[int(r["sample_index"])] = dict(r)
            else:
                by_sample.setdefault(int(r["sample_index"]), {}).setdefault(table, []).append(r)
    with write_session(engine) as session:
        result = session.execute(
            shards_update(ShardStatus.running, ShardStatus.done)
            .where(Shard.id == claim.shard_id, Shard.lease_owner == claim.owner)
            .values(finished_at=utcnow(), lease_expires_at=None)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            session.rollback()
            return False
        for index in sorted(set(by_sample) - set(errors)):
            try:
                with session.begin_nested():
                    for table, table_rows in by_sample[index].items():
                        insert_ignore(session, RESULT_TABLES[table], table_rows)
            except Exception as exc:
                if is_permanent is not None and not is_permanent(exc):
                    raise
                text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
                key = next((r.get("key") for r in by_sample[index].get("samples", [])), None)
                errors[index] = {
                    "job_id": claim.job_id,
                    "sample_index": index,
                    "key": key,
                    "stage": "store",
                    "message": f"{type(exc).__name__}: {text[0] if text else ''}"[:2000],
                    "attempt": claim.attempt,
                }
        safe = [
            {k: store_safe(v) if isinstance(v, str) else v for k, v in e.items()}
            for e in errors.values()
        ]
        insert_ignore(session, SampleErrorRow, safe)
        return True


def fail_attempt(engine: Engine, claim: Claim, error: str, max_attempts: int) -> ShardStatus | None:
    """Record a failed attempt: back to pending (to be run again) or failed past the cap."""
    with write_session(engine) as session:
        shard = session.get(Shard, claim.shard_id)
        if shard is None or shard.lease_owner != claim.owner or shard.status != ShardStatus.running:
            return None
        shard.error = error
        shard.lease_owner = None
        shard.lease_expires_at = None
        if shard.attempts >= max_attempts:
            shard.error = f"failed after {shard.attempts} attempts: {error}"
            shard.finished_at = utcnow()
            return move_shard(shard, ShardStatus.failed)
        return move_shard(shard, ShardStatus.pending)


def shard_counts(session: Session, job_id: int) -> dict[str, int]:
    """Shards of a job by status (every status present, zero when none)."""
    counts = {s.value: 0 for s in ShardStatus}
    for status, n in session.execute(
        select(Shard.status, func.count()).where(Shard.job_id == job_id).group_by(Shard.status)
    ):
        counts[ShardStatus(status).value] = int(n)
    return counts


def job_progress(session: Session, job_id: int, *, rows: bool = True) -> dict[str, Any]:
    """Progress of a job: shard counts, samples finished (whole shards plus the finished
    batches of unfinished ones), done/failed, rate (samples/s), ETA (s), owner. ``rows``
    False: ``samples_done``, ``maps_computed`` and ``maps_reused`` are None (they count the
    job's result rows, which a list of many large jobs cannot afford)."""
    job = get_job(session, job_id)
    shards = shard_counts(session, job_id)
    failed = session.scalar(select(func.count()).where(SampleErrorRow.job_id == job_id)) or 0
    # a sample that predicted and then failed has a samples row too: it counts as failed only
    erred = select(SampleErrorRow.sample_index).where(SampleErrorRow.job_id == job_id)
    done = (
        session.scalar(
            select(func.count()).where(
                SampleRow.job_id == job_id, SampleRow.sample_index.not_in(erred)
            )
        )
        if rows
        else None
    )
    finished_samples = (
        session.scalar(
            select(func.coalesce(func.sum(Shard.stop - Shard.start), 0)).where(
                Shard.job_id == job_id, Shard.status.in_([ShardStatus.done, ShardStatus.failed])
            )
        )
        or 0
    )
    # running (and interrupted) shards report the samples of their finished batches
    finished_samples += (
        session.scalar(
            select(func.coalesce(func.sum(Shard.samples_done), 0)).where(
                Shard.job_id == job_id,
                Shard.status.not_in([ShardStatus.done, ShardStatus.failed]),
            )
        )
        or 0
    )
    stage_counts = _stage_counts(session, job) if job.finished_at is None else None
    # maps this job computed vs read from an earlier job (same identity, xaiq.worker.reuse)
    maps: dict[bool, int | None] = {False: None, True: None}
    if rows:
        maps = {False: 0, True: 0}
        for reused, n in session.execute(
            select(Attribution.reused, func.count())
            .where(Attribution.job_id == job_id)
            .group_by(Attribution.reused)
        ):
            maps[bool(reused)] = int(maps[bool(reused)] or 0) + int(n)
    rate = eta = None
    if job.started_at is not None:
        end = job.finished_at or utcnow()
        seconds = max((end - job.started_at).total_seconds(), 1e-6)
        rate = finished_samples / seconds
        if job.finished_at is None and rate > 0:
            eta = (job.n_samples - finished_samples) / rate
    return {
        "job": job.id,
        "kind": job.kind.value,
        "status": job.status.value,
        "priority": job.priority,
        "queue": job.queue,
        "n_samples": job.n_samples,
        "samples_finished": int(finished_samples),
        "samples_done": None if done is None else int(done),
        "samples_failed": int(failed),
        "maps_computed": maps[False],
        "maps_reused": maps[True],
        "shards": shards,
        # the stages of the running batches and each stage's samples (unfinished jobs)
        "stages": stage_counts or {"stage": None, "done": {}},
        "rate": rate,
        "eta_seconds": eta,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "error": job.error,
        "owner": job.owner,
    }


def _stage_counts(session: Session, job: Job) -> dict[str, Any] | None:
    """The job's stage counts from its shards (:func:`xaiq.db.stages.stored_stages`):
    finished shards whole, open ones by what their workers last wrote."""
    from xaiq.db.stages import job_stages, stored_stages

    closed = [ShardStatus.done, ShardStatus.failed]
    finished = session.scalar(
        select(func.coalesce(func.sum(Shard.stop - Shard.start), 0)).where(
            Shard.job_id == job.id, Shard.status.in_(closed)
        )
    )
    open_shards = [
        (status == ShardStatus.running, done, stage, stage_done)
        for status, done, stage, stage_done in session.execute(
            select(Shard.status, Shard.samples_done, Shard.stage, Shard.stage_done).where(
                Shard.job_id == job.id,
                Shard.status.not_in(closed),
                (Shard.status == ShardStatus.running) | (Shard.samples_done > 0),
            )
        )
    ]
    if not finished and not open_shards:
        return None
    return stored_stages(
        job_stages(job.kind.value, job.spec or {}), int(finished or 0), open_shards
    )


def finalize_job(session: Session, job_id: int) -> JobStatus:
    """Set the final status of a job whose shards are all finished (else leave it)."""
    job = get_job(session, job_id)
    if job.finished_at is not None:
        return job.status
    unfinished = select(Shard.id).where(Shard.job_id == job_id, Shard.status.in_(UNFINISHED))
    if session.scalar(unfinished.limit(1)) is not None:
        # the usual answer, called by every finished shard: stop at the first open shard
        # instead of counting all of them
        return job.status
    counts = shard_counts(session, job_id)
    errors = session.scalar(select(func.count()).where(SampleErrorRow.job_id == job_id)) or 0
    done_samples = (
        session.scalar(
            select(func.coalesce(func.sum(Shard.stop - Shard.start), 0)).where(
                Shard.job_id == job_id, Shard.status == ShardStatus.done
            )
        )
        or 0
    )
    ok = done_samples - errors
    if job.cancel_requested:
        final = JobStatus.cancelled
    elif ok <= 0:
        final = JobStatus.failed
        first = session.scalar(
            select(Shard.error).where(Shard.job_id == job_id, Shard.error.is_not(None)).limit(1)
        )
        job.error = first or "no sample succeeded (see sample errors)"
    elif counts[ShardStatus.failed.value] or errors:
        final = JobStatus.partial
        why = []
        if counts[ShardStatus.failed.value]:
            why.append(f"{counts[ShardStatus.failed.value]} shards failed")
        if errors:
            why.append(f"{errors} samples failed")
        job.error = f"{' and '.join(why)} (see `xaiq errors {job_id}`)"
    else:
        final = JobStatus.succeeded
    job.finished_at = utcnow()
    return move_job(job, final)


def request_cancel(engine: Engine, job_id: int) -> dict[str, int]:
    """Flag a job cancelled; pending and queued shards are cancelled at once (a running
    shard finishes its current attempt). Returns the shard counts."""
    with write_session(engine) as session:
        job = get_job(session, job_id)
        if job.finished_at is None:
            job.cancel_requested = True
            session.execute(
                shards_update([ShardStatus.pending, ShardStatus.queued], ShardStatus.cancelled)
                .where(Shard.job_id == job_id)
                .values(finished_at=utcnow())
            )
            session.flush()
            finalize_job(session, job_id)
        return shard_counts(session, job_id)


def rerun_shards(session: Session, job_id: int) -> int:
    """A job's failed and cancelled shards back to pending, their attempts reset; returns
    how many."""
    result = session.execute(
        shards_update([ShardStatus.failed, ShardStatus.cancelled], ShardStatus.pending)
        .where(Shard.job_id == job_id)
        .values(attempts=0, error=None, lease_owner=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def reset_failed_shards(engine: Engine, job_id: int) -> int:
    """Put a finished job's failed (and cancelled) shards back to pending; returns how many."""
    with write_session(engine) as session:
        job = get_job(session, job_id)
        n = rerun_shards(session, job_id)
        if n:
            reopen_job(job)
            job.finished_at = None
            job.cancel_requested = False
            job.error = None
        return n


def pending_shard_ids(session: Session, job_id: int) -> list[int]:
    return list(
        session.scalars(
            select(Shard.id)
            .where(Shard.job_id == job_id, Shard.status == ShardStatus.pending)
            .order_by(Shard.index)
        )
    )


def beat(engine: Engine, component: str, owner: str) -> None:
    """Record that the singleton ``component`` (the scheduler) is alive."""
    with write_session(engine) as session:
        row = session.get(Heartbeat, component)
        if row is None:
            session.add(Heartbeat(component=component, owner=owner, last_seen=utcnow()))
        else:
            row.owner, row.last_seen = owner, utcnow()


def last_beat(session: Session, component: str) -> Heartbeat | None:
    return session.get(Heartbeat, component)


def worker_beat(
    engine: Engine,
    name: str,
    *,
    hostname: str,
    pid: int,
    queues: str,
    device: str,
    current_shard_id: int | None,
) -> None:
    """Upsert the heartbeat row of one worker process (one UPDATE when the row exists: a
    worker beats before and after every shard)."""
    with write_session(engine) as session:
        updated = session.execute(
            update(WorkerRow)
            .where(WorkerRow.name == name)
            .values(
                current_shard_id=current_shard_id,
                queues=queues,
                device=device,
                last_seen=utcnow(),
            )
        )
        if updated.rowcount:  # type: ignore[attr-defined]
            return
        session.add(
            WorkerRow(
                name=name,
                hostname=hostname,
                pid=pid,
                queues=queues,
                device=device,
                current_shard_id=current_shard_id,
                started_at=utcnow(),
                last_seen=utcnow(),
            )
        )


def live_workers(session: Session, max_age_seconds: float) -> list[WorkerRow]:
    cutoff = utcnow() - dt.timedelta(seconds=max_age_seconds)
    return list(
        session.scalars(
            select(WorkerRow).where(WorkerRow.last_seen >= cutoff).order_by(WorkerRow.name)
        )
    )


def forget_worker(engine: Engine, name: str) -> None:
    with write_session(engine) as session:
        row = session.get(WorkerRow, name)
        if row is not None:
            session.delete(row)


def rows_for(session: Session, table: str, job_id: int) -> list[dict[str, Any]]:
    """Every row of a result table for a job as dicts without the surrogate id, ordered by
    their unique key (for comparisons between runs)."""
    table_obj: Table = RESULT_TABLES[table].__table__  # type: ignore[assignment]
    cols = [c for c in table_obj.columns if c.name != "id"]
    uq = next((c for c in table_obj.constraints if isinstance(c, UniqueConstraint)), None)
    order = list(uq.columns) if uq is not None else cols
    stmt = select(*cols).where(table_obj.c.job_id == job_id).order_by(*order)
    return [dict(r._mapping) for r in session.execute(stmt)]


def jobs_list(
    session: Session,
    limit: int = 50,
    statuses: Iterable[str] | None = None,
    *,
    tags: Sequence[str] = (),
    name: str | None = None,
) -> list[Job]:
    """The newest ``limit`` jobs, of these statuses, with every tag of ``tags``, named
    ``name`` (each filter only when given)."""
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if statuses:
        stmt = stmt.where(Job.status.in_([JobStatus(s) for s in statuses]))
    if tags:
        from xaiq.db.labels import jobs_with_tags

        stmt = stmt.where(Job.id.in_(jobs_with_tags(tags)))
    if name is not None:
        stmt = stmt.where(Job.name == name)
    return list(session.scalars(stmt))


def reap_expired(engine: Engine, job_id: int | None = None) -> list[tuple[int, str]]:
    """Shards whose lease expired (their worker died or hung) go back to pending, or to
    failed once they used up the job's ``max_attempts``. Returns ``(shard_id, new status)``."""
    now = utcnow()
    moved: list[tuple[int, str]] = []
    with write_session(engine) as session:
        stmt = (
            select(Shard, Job)
            .join(Job, Job.id == Shard.job_id)
            .where(Shard.status == ShardStatus.running)
            .where(or_(Shard.lease_expires_at < now, Shard.lease_expires_at.is_(None)))
        )
        if job_id is not None:
            stmt = stmt.where(Shard.job_id == job_id)
        for shard, job in session.execute(stmt).all():
            moved.append((shard.id, settle_expired_lease(shard, job, now).value))
    return moved
