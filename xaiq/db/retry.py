"""Which database errors are transient, and retrying through them.

A lost PostgreSQL connection (a restart, a failover) and a SQLite lock timeout are transient;
a missing table, a read-only or full disk, a value the store cannot hold are not (on SQLite
they are ``OperationalError``s too, told apart by their text).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

DB_RETRY_SECONDS = 120.0  # default of XAIQ_DB_RETRY_SECONDS


def retry_seconds() -> float:
    """``XAIQ_DB_RETRY_SECONDS``: how long store operations are retried while the database is
    unavailable (default 120 s)."""
    return float(os.environ.get("XAIQ_DB_RETRY_SECONDS", DB_RETRY_SECONDS))


def is_transient(exc: BaseException) -> bool:
    """A database error worth retrying (see the module docstring)."""
    if not isinstance(exc, DBAPIError):
        return False
    sqlite = type(exc.orig).__module__.startswith("sqlite3")
    return bool(exc.connection_invalidated) or (
        isinstance(exc, OperationalError | InterfaceError)
        and (not sqlite or "locked" in str(exc.orig))
    )


def with_db_retry(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, retried with backoff while the database is unavailable, for up
    to :func:`retry_seconds`; anything not :func:`is_transient` is raised at once. The writes
    it wraps must be idempotent or lease-guarded (a retry after a commit whose answer was lost
    then changes nothing)."""
    deadline = time.monotonic() + retry_seconds()
    delay = 0.25
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
