"""The Celery application: JSON only, late acks, reject on worker lost, prefetch 1, no result
backend (the database is the source of truth), queues ``gpu`` and ``cpu``.

Task events are on (``worker_send_task_events``, ``task_send_sent_event``) so Flower and
``celery events`` see workers and tasks. The broker URL comes from ``XAIQ_BROKER_URL`` (and
``XAIQ_BROKER_PASSWORD``: :mod:`xaiq.broker.urls`).
Importing this module imports no torch and no worker code: the worker's tasks are named in
``include`` and imported only by a worker.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from xaiq.broker.urls import broker_url as configured_broker_url

QUEUES = ("gpu", "cpu")
TASK_RUN_SHARD = "xaiq.run_shard"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


def make_app(broker_url: str | None = None) -> Celery:
    """A Celery app on ``broker_url`` (default ``XAIQ_BROKER_URL``) with xaiq's settings."""
    app = Celery("xaiq", broker=broker_url or configured_broker_url() or DEFAULT_BROKER)
    app.conf.update(
        accept_content=["json"],
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # a pool process imports torch (and the compute stack) before it reports up; the
        # default 4 s is too short on a busy host and loops on kill/respawn forever
        worker_proc_alive_timeout=120.0,
        task_queues=[Queue(q, routing_key=q) for q in QUEUES],
        task_default_queue="cpu",
        task_create_missing_queues=False,
        # a lost worker's message comes back after this; the scheduler's lease reaper usually
        # re-publishes the shard long before
        broker_transport_options={"visibility_timeout": 3600},
        broker_connection_retry_on_startup=True,
        # monitoring (Flower, `celery events`): workers announce themselves and their tasks
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        include=["xaiq.worker.tasks"],
    )
    return app
