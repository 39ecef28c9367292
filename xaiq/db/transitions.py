"""Every change of a job's or a shard's status, checked against one table.

A job or shard is created ``pending`` (the column default). From then on its status changes
only here: :func:`move_job` and :func:`move_shard` for a row in hand, :func:`shards_update`
for an ``UPDATE`` of many shards (it selects only rows in a state that may move, so a row in
any other state is left alone). A change the tables below do not list raises
:class:`TransitionError`; staying in the same state is not a change.

The expired-lease rule (:func:`expired_lease_status`, :func:`settle_expired_lease`) is
written once, for the lease reaper and for a claim that finds a dead worker's shard.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Update, update

from xaiq.db.errors import TransitionError
from xaiq.db.models import Job, JobStatus, Shard, ShardStatus

J, S = JobStatus, ShardStatus
FINISHED_JOB = frozenset({J.succeeded, J.partial, J.failed, J.cancelled})

JOB_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    # claimed; stopped by its owner or found orphaned; finalised (a cancel of a pending job)
    J.pending: frozenset({J.running, J.interrupted, *FINISHED_JOB}),
    J.running: frozenset({J.interrupted, *FINISHED_JOB}),
    # resumed (running again, or pending when it never started); finalised
    J.interrupted: frozenset({J.pending, J.running, *FINISHED_JOB}),
    # `xaiq retry` / `xaiq resume` runs its failed and cancelled shards again
    J.partial: frozenset({J.pending, J.running}),
    J.failed: frozenset({J.pending, J.running}),
    J.cancelled: frozenset({J.pending, J.running}),
    J.succeeded: frozenset(),  # final: nothing to run again
}

SHARD_TRANSITIONS: Mapping[ShardStatus, frozenset[ShardStatus]] = {
    # published; claimed by the local executor; cancelled
    S.pending: frozenset({S.queued, S.running, S.cancelled}),
    # claimed; back to pending (a failed send, a message presumed lost); cancelled
    S.queued: frozenset({S.pending, S.running, S.cancelled}),
    # done; failed past the attempt cap; back to pending (a failed attempt, an expired lease,
    # a suspended or orphaned run); cancelled. running -> running: a dead worker's shard
    # claimed again (not a change of status)
    S.running: frozenset({S.done, S.failed, S.pending, S.cancelled}),
    S.failed: frozenset({S.pending}),  # retried
    S.cancelled: frozenset({S.pending}),  # retried or resumed
    S.done: frozenset(),
}


def _check(table: Mapping[Any, frozenset[Any]], what: str, current: Any, to: Any) -> None:
    if current == to:
        return
    allowed = table[current]
    if to not in allowed:
        may = ", ".join(sorted(s.value for s in allowed)) or "nothing (final)"
        raise TransitionError(f"{what}: {current.value} -> {to.value} is not allowed (may: {may})")


def job_may_move(current: JobStatus, to: JobStatus) -> bool:
    return current == to or to in JOB_TRANSITIONS[current]


def shard_may_move(current: ShardStatus, to: ShardStatus) -> bool:
    return current == to or to in SHARD_TRANSITIONS[current]


def move_job(job: Job, to: JobStatus) -> JobStatus:
    """Set ``job``'s status to ``to``; :class:`TransitionError` when not allowed."""
    _check(JOB_TRANSITIONS, f"job {job.id}", job.status, to)
    job.status = to
    return to


def move_shard(shard: Shard, to: ShardStatus) -> ShardStatus:
    """Set ``shard``'s status to ``to``; :class:`TransitionError` when not allowed."""
    _check(SHARD_TRANSITIONS, f"shard {shard.id}", shard.status, to)
    shard.status = to
    return to


def shards_update(sources: ShardStatus | Iterable[ShardStatus], to: ShardStatus) -> Update:
    """``UPDATE shards SET status = to WHERE status IN sources``, for the caller to narrow
    with ``.where`` and extend with ``.values``; :class:`TransitionError` when a source may
    not move to ``to``."""
    froms = [sources] if isinstance(sources, ShardStatus) else list(sources)
    for current in froms:
        _check(SHARD_TRANSITIONS, "shards", current, to)
    return update(Shard).where(Shard.status.in_(froms)).values(status=to)


def reopen_job(job: Job) -> JobStatus:
    """A job with shards to run again: ``running`` when it had started, else ``pending``."""
    return move_job(job, J.running if job.started_at else J.pending)


def lease_expired(shard: Shard, now: dt.datetime) -> bool:
    """A running shard whose lease ran out (its worker died or hung)."""
    return shard.status is S.running and (
        shard.lease_expires_at is None or shard.lease_expires_at < now
    )


def expired_lease_status(shard: Shard, job: Job | None) -> ShardStatus:
    """Where a shard whose lease expired goes: ``cancelled`` when its job is being cancelled
    (or gone), ``failed`` once it used the job's ``max_attempts``, else ``pending``."""
    if job is None or job.cancel_requested:
        return S.cancelled
    if shard.attempts >= int((job.spec or {}).get("max_attempts", 3)):
        return S.failed
    return S.pending


def settle_expired_lease(shard: Shard, job: Job | None, now: dt.datetime) -> ShardStatus:
    """Apply :func:`expired_lease_status`: the lease is dropped, the reason recorded (a
    failed shard also gets its ``finished_at``)."""
    to = expired_lease_status(shard, job)
    reason = f"lease of {shard.lease_owner} expired (worker lost?)"
    shard.lease_owner, shard.lease_expires_at = None, None
    if to is S.failed:
        shard.error = f"failed after {shard.attempts} attempts: {reason}"
        shard.finished_at = now
    elif to is S.pending:
        shard.error = reason
    return move_shard(shard, to)
