"""The embedded executor: runs a job's shards in this process through the same shard
function the Celery workers use (so the rows are the same), claiming them from the tables.

The process owns the job while it runs (``jobs.owner``, refreshed by a thread) so that
another command can tell a running job from one whose process died. When ``stop`` is set
(Ctrl-C) the running shard stops after its current batch, the batches done are written, and
the job becomes ``interrupted``; ``xaiq resume`` continues it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from xaiq.analysis.digest import build_digest_quietly
from xaiq.db.jobs import finalize_job, get_job, job_progress, pending_shard_ids, reap_expired
from xaiq.db.lifecycle import (
    owner_stale_seconds,
    release_job,
    take_job,
    this_owner,
    touch_job,
)
from xaiq.db.models import Shard, ShardStatus, utcnow
from xaiq.db.session import get_engine, read_session, write_session
from xaiq.worker.checkpoint import STOP
from xaiq.worker.shard import ShardOutcome, owner_name, process_shard

Progress = Callable[[dict[str, Any]], None]
OTHERS_POLL_SECONDS = 0.5


def _taken_over(owner: str | None, me: str) -> bool:
    """Another process owns the job now (it took it over while this one was stopped)."""
    return owner is not None and owner != me


def _leased_elsewhere(session: Session, job_id: int, owner: str) -> bool:
    """Whether a shard of the job runs under another owner's live lease (a process this one
    took the job over from, stopped and then continued, finishing its current batch)."""
    return (
        session.scalar(
            select(Shard.id)
            .where(Shard.job_id == job_id, Shard.status == ShardStatus.running)
            .where(Shard.lease_owner != owner, Shard.lease_expires_at >= utcnow())
            .limit(1)
        )
        is not None
    )


class _OwnerKeeper:
    """Refreshes this process's claim on the job every sixth of the stale period."""

    def __init__(self, engine: Engine, job_id: int, owner: str) -> None:
        self.engine, self.job_id, self.owner = engine, job_id, owner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="xaiq-owner", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(max(owner_stale_seconds() / 6, 0.2)):
            try:
                touch_job(self.engine, self.job_id, self.owner)
            except Exception:  # a DB hiccup: the next refresh retries
                continue

    def __enter__(self) -> _OwnerKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _report(engine: Engine, job_id: int, progress: Progress | None) -> None:
    if progress is not None:
        with read_session(engine) as session:
            progress(job_progress(session, job_id))


def run_local(
    job_id: int,
    *,
    engine: Engine | None = None,
    device: Any = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Run every pending shard of ``job_id`` here, then finalise the job.

    ``progress`` is called with :func:`xaiq.db.jobs.job_progress` after each shard (the
    shards report their progress per batch to the store, for anyone polling it). A shard that fails
    is retried (up to the job's ``max_attempts``) before the job is finalised; cancellation
    (``xaiq cancel`` from another shell) stops the running shard at its next batch. ``stop``
    (default: :data:`xaiq.worker.checkpoint.STOP`) interrupts the job the same way and leaves
    it ``interrupted``. When another process takes the job over (this one was stopped past
    the stale period, see :mod:`xaiq.db.lifecycle`), this one stops claiming shards and
    leaves the job to it; when this one took it over, it waits for a shard the other process
    still runs under a live lease instead of calling the job interrupted.

    Returns the final progress dict. Tunes this process's allocator for the compute, as a
    worker does (:func:`xaiq.xai.allocator.tune_host_allocator`), and sizes torch's threads
    to this process's share of the machine's cores before every shard
    (:class:`xaiq.worker.cores.ComputeSlot`; the caller's count is restored afterwards).
    """
    import torch

    from xaiq.worker.cores import ComputeSlot
    from xaiq.xai.allocator import tune_host_allocator

    tune_host_allocator()
    engine = engine or get_engine()
    stop = stop if stop is not None else STOP
    me = this_owner()
    take_job(engine, job_id, me)
    owner = owner_name("local")
    outcomes: list[ShardOutcome] = []
    threads_before = torch.get_num_threads()
    try:
        with _OwnerKeeper(engine, job_id, me), ComputeSlot() as slot:
            while not stop.is_set():
                reap_expired(engine, job_id)
                with read_session(engine) as session:
                    job = get_job(session, job_id)
                    if job.cancel_requested or _taken_over(job.owner, me):
                        break
                    ids = pending_shard_ids(session, job_id)
                    others = not ids and _leased_elsewhere(session, job_id, owner)
                if others:  # another process finishes a shard it runs under a live lease
                    stop.wait(OTHERS_POLL_SECONDS)  # (its lease expires if it died)
                    continue
                if not ids:
                    break
                for shard_id in ids:
                    with read_session(engine) as session:
                        job = get_job(session, job_id)
                        if job.cancel_requested or _taken_over(job.owner, me) or stop.is_set():
                            break
                    slot.fit()  # another job may have started or ended on this machine
                    outcomes.append(
                        process_shard(
                            engine,
                            shard_id,
                            owner=owner,
                            device=device,
                            from_pending=True,
                            stop=stop,
                        )
                    )
                    _report(engine, job_id, progress)
            with write_session(engine) as session:
                finalize_job(session, job_id)
    finally:
        torch.set_num_threads(threads_before)
        release_job(engine, job_id, me, interrupted=True, shard_owner=owner)
    build_digest_quietly(engine, job_id)  # a no-op when the last shard's finaliser built it
    with read_session(engine) as session:
        return job_progress(session, job_id)


def run_spec(
    spec: dict[str, Any],
    *,
    engine: Engine | None = None,
    device: Any = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Submit ``spec`` as an embedded (local) job and run it to the end here: the one-call
    entry for scripts and benchmarks. Returns the final progress dict (``job`` is its id)."""
    from xaiq.scheduler.submit import submit

    engine = engine or get_engine()
    job = submit(spec, engine=engine, local=True)
    return run_local(job.job_id, engine=engine, device=device, progress=progress)
