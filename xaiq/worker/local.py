"""The embedded executor: runs a job's shards in this process through the same shard
function the Celery workers use (so the rows are the same), claiming them from the tables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from xaiq.db.jobs import finalize_job, get_job, job_progress, pending_shard_ids, reap_expired
from xaiq.db.session import get_engine, read_session, write_session
from xaiq.worker.shard import ShardOutcome, owner_name, process_shard

Progress = Callable[[dict[str, Any]], None]


def run_local(
    job_id: int,
    *,
    engine: Engine | None = None,
    device: Any = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run every pending shard of ``job_id`` here, then finalise the job.

    ``progress`` is called with :func:`xaiq.db.jobs.job_progress` after each shard. A shard
    that fails is retried (up to the job's ``max_attempts``) before the job is finalised;
    cancellation (``xaiq cancel`` from another shell) is honoured between shards.
    Returns the final progress dict. Tunes this process's allocator for the compute, as a
    worker does (:func:`xaiq.xai.allocator.tune_host_allocator`).
    """
    from xaiq.xai.allocator import tune_host_allocator

    tune_host_allocator()
    engine = engine or get_engine()
    owner = owner_name("local")
    outcomes: list[ShardOutcome] = []
    while True:
        reap_expired(engine, job_id)
        with read_session(engine) as session:
            if get_job(session, job_id).cancel_requested:
                break
            ids = pending_shard_ids(session, job_id)
        if not ids:
            break
        for shard_id in ids:
            with read_session(engine) as session:
                if get_job(session, job_id).cancel_requested:
                    break
            outcomes.append(
                process_shard(engine, shard_id, owner=owner, device=device, from_pending=True)
            )
            if progress is not None:
                with read_session(engine) as session:
                    progress(job_progress(session, job_id))
    with write_session(engine) as session:
        finalize_job(session, job_id)
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
