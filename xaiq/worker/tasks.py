"""Celery tasks: thin wrappers that take a shard id and call the shard function."""

from __future__ import annotations

from xaiq.worker import runtime  # noqa: F401  (connects the worker signals)
from xaiq.worker.celery_app import TASK_RUN_SHARD, app


@app.task(name=TASK_RUN_SHARD, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_shard(shard_id: int) -> str:
    """Run shard ``shard_id`` in this worker process; returns the outcome's status."""
    from xaiq.worker.runtime import run_shard_here

    return run_shard_here(int(shard_id))
