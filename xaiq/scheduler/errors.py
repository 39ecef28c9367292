"""Errors of the job layer (specs, submission, scheduling).

SchedulerError           root
├── SpecError            a job spec with an unknown key, a wrong type or a bad value
├── BrokerError          the broker (XAIQ_BROKER_URL) cannot be reached
└── JobStateError        an operation that the job's current state does not allow
"""

from __future__ import annotations


class SchedulerError(Exception):
    """Root of the errors raised by ``xaiq.scheduler`` and ``xaiq.worker``."""


class SpecError(SchedulerError, ValueError):
    """A job spec that fails validation; the message names the key and the value."""


class BrokerError(SchedulerError):
    """The message broker cannot be reached (the URL is printed without its password)."""


class JobStateError(SchedulerError):
    """The job is not in a state that allows the requested operation."""
