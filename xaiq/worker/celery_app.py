"""The workers' Celery application (settings in :mod:`xaiq.broker.app`, shared with the
scheduler that publishes to it). Importing this module imports no torch."""

from __future__ import annotations

from xaiq.broker.app import DEFAULT_BROKER, QUEUES, TASK_RUN_SHARD, make_app

__all__ = ["DEFAULT_BROKER", "QUEUES", "TASK_RUN_SHARD", "app", "make_app"]

app = make_app()
