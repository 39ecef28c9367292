"""Refusing impossible process configurations at start, one line each (exit 2).

A worker with ``--threads -1`` or ``--device bogus`` used to start, take messages and fail
every one of them; a scheduler with ``--interval -1`` span in a busy loop. Limits here are the
documented ones (docs/operations.md, "Limits").
"""

from __future__ import annotations

import math

from xaiq.cli.errors import CliError

QUEUES = ("gpu", "cpu")
MAX_CONCURRENCY = 256
MAX_THREADS = 1024
MAX_IN_FLIGHT = 100_000
MAX_INTERVAL = 3600.0


def _queues(option: str, text: str) -> list[str]:
    wanted = [q.strip() for q in text.split(",") if q.strip()]
    bad = [q for q in wanted if q not in QUEUES]
    if bad or not wanted:
        raise CliError(f"{option} takes gpu and/or cpu, got {text!r}")
    return list(dict.fromkeys(wanted))


def _between(option: str, value: float, low: float, high: float) -> None:
    if not (math.isfinite(value) and low <= value <= high):
        raise CliError(f"{option} must be between {low:g} and {high:g}, got {value!r}")


def check_worker_options(
    queues: str, concurrency: int, threads: int | None, device: str | None
) -> list[str]:
    """The worker's queues, after refusing impossible options (raises :class:`CliError`)."""
    wanted = _queues("--queues", queues)
    _between("--concurrency", concurrency, 1, MAX_CONCURRENCY)
    if threads is not None:
        _between("--threads", threads, 1, MAX_THREADS)
    if device:
        from xaiq.xai.device import resolve_device
        from xaiq.xai.errors import InvalidParameterError

        try:
            resolve_device(device)
        except InvalidParameterError as exc:
            raise CliError(f"--device: {exc}") from None
    return wanted


def check_scheduler_options(queues: str, max_in_flight: int, interval: float) -> list[str]:
    """The scheduler's queues, after refusing impossible options (raises :class:`CliError`)."""
    wanted = _queues("--queues", queues)
    _between("--max-in-flight", max_in_flight, 1, MAX_IN_FLIGHT)
    _between("--interval", interval, 0.01, MAX_INTERVAL)
    return wanted


JOB_ID_MAX = 2**31 - 1  # job ids are 32-bit on PostgreSQL (xaiq.scheduler.bounds.JOB_ID_RANGE)
