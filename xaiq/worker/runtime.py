"""Per-process worker state: device, torch threads, the heartbeat thread, the current shard.

Set up in each pool process after the fork (``worker_process_init``) so that no torch, CUDA
or database state crosses a fork. ``xaiq worker`` passes its options through the environment:
``XAIQ_DEVICE``, ``XAIQ_WORKER_QUEUES``, ``XAIQ_TORCH_THREADS``, ``XAIQ_WORKER_CONCURRENCY``,
``XAIQ_HEARTBEAT_SECONDS``, ``XAIQ_WORKER_NAME`` (the Celery node name, ``--name``).

Torch threads: ``XAIQ_TORCH_THREADS`` when set, else the cores shared out among the
machine's compute processes, counting at least the worker's concurrency
(:mod:`xaiq.worker.cores`), refitted before every shard.

Stopping: on a warm shutdown (SIGTERM or Ctrl-C to the worker) the main process forwards
SIGTERM to its pool processes; a pool process running a shard then stops it after the current
batch (its finished batches are written, the shard goes back to pending for another worker)
instead of holding the shutdown for the rest of the shard. An idle pool process just exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading

from celery import signals

from xaiq.broker.urls import broker_url
from xaiq.broker.wake import forget_clients, notify
from xaiq.db.jobs import forget_worker, worker_beat
from xaiq.db.session import dispose_engines, get_engine
from xaiq.worker.cores import ComputeSlot

HEARTBEAT_SECONDS = float(os.environ.get("XAIQ_HEARTBEAT_SECONDS", "5"))


class _State:
    name = ""
    slot: ComputeSlot | None = None
    current_shard: int | None = None
    stop = threading.Event()
    thread: threading.Thread | None = None
    # one beat at a time: the heartbeat thread reads ``current_shard`` and writes it; without
    # the lock its write of a finished shard could land after the task's own "idle" beat
    beat_lock = threading.Lock()


def worker_name() -> str:
    """``<node name>:<pid>`` (node name from ``--name``, else the host name)."""
    node = os.environ.get("XAIQ_WORKER_NAME") or socket.gethostname()
    return f"{node}:{os.getpid()}"


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM while a shard runs: stop it after the current batch (installed per task,
    because the pool resets signal handlers after process start-up)."""
    from xaiq.worker.checkpoint import STOP

    STOP.set()


@signals.worker_shutting_down.connect
def _on_shutting_down(**_: object) -> None:
    """In the worker's main process: ask the pool processes to stop their shards."""
    from billiard.process import active_children

    for child in active_children():
        with contextlib.suppress(Exception):
            os.kill(child.pid, signal.SIGTERM)


def _device() -> str | None:
    return os.environ.get("XAIQ_DEVICE") or None


def _beat() -> None:
    with _State.beat_lock:
        worker_beat(
            get_engine(),
            _State.name,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            queues=os.environ.get("XAIQ_WORKER_QUEUES", "gpu,cpu"),
            device=_device() or "auto",
            current_shard_id=_State.current_shard,
        )


def _heartbeat_loop() -> None:
    while not _State.stop.wait(HEARTBEAT_SECONDS):
        try:
            _beat()
        except Exception:  # a DB hiccup must not kill the worker; the next beat retries
            continue


def start_process() -> None:
    """Per-process setup: fresh DB engines and Redis clients, allocator, torch threads,
    heartbeat thread."""
    dispose_engines()
    forget_clients()

    from xaiq.xai.allocator import tune_host_allocator

    tune_host_allocator()

    import xaiq.worker.compute  # noqa: F401  (import the compute stack now, not in the 1st task)

    _State.slot = ComputeSlot(at_least=int(os.environ.get("XAIQ_WORKER_CONCURRENCY") or 1))
    _State.slot.__enter__()
    _State.slot.fit()
    _State.name = worker_name()
    _State.stop.clear()
    with contextlib.suppress(Exception):
        _beat()
    _State.thread = threading.Thread(target=_heartbeat_loop, name="xaiq-heartbeat", daemon=True)
    _State.thread.start()


def stop_process() -> None:
    _State.stop.set()
    if _State.slot is not None:
        _State.slot.__exit__(None, None, None)
        _State.slot = None
    with contextlib.suppress(Exception):
        forget_worker(get_engine(), _State.name)


@signals.worker_process_init.connect
def _on_process_init(**_: object) -> None:
    start_process()


@signals.worker_process_shutdown.connect
def _on_process_shutdown(**_: object) -> None:
    stop_process()


def run_shard_here(shard_id: int) -> str:
    """The task body: claim and run one shard, reporting it in the heartbeat row."""
    from celery.exceptions import Reject

    from xaiq.worker.checkpoint import STOP
    from xaiq.worker.shard import owner_name, process_shard

    if not _State.name:  # a pool without worker_process_init (solo, threads)
        start_process()
    if STOP.is_set():  # shutting down: the message goes back to the queue for another worker
        raise Reject("worker stopping", requeue=True)
    _State.current_shard = shard_id
    if _State.slot is not None:
        _State.slot.fit()  # other compute processes may have started or ended
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        _beat()
        outcome = process_shard(
            get_engine(), shard_id, owner=owner_name("celery"), device=_device()
        )
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        _State.current_shard = None
        with contextlib.suppress(Exception):
            _beat()
        # a slot is free: the scheduler can publish the next shard now instead of at its tick
        notify(broker_url())
    return outcome.status
