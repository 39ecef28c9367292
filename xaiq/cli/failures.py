"""The store or broker failing, as one line and exit code 3 (docs/operations.md).

Unreachable (``DbConnectError``, ``BrokerError``) and failing after connecting (read-only,
full, locked, schema gone, file replaced: ``StoreError`` or a raw SQLAlchemy error, described
by :func:`xaiq.db.failures.describe`) are the same situation for a user: the command could
not use the store; nothing about their input was wrong.
"""

from __future__ import annotations

STORE_EXIT = 3


def store_errors() -> tuple[type[BaseException], ...]:
    """Exception classes that mean "the store or broker failed" (imported when needed)."""
    from sqlalchemy.exc import SQLAlchemyError

    from xaiq.db.errors import DbConnectError, StoreError
    from xaiq.scheduler.errors import BrokerError

    return (DbConnectError, StoreError, BrokerError, SQLAlchemyError)


def store_message(exc: BaseException) -> str:
    """One line naming the store (password masked) and what happened."""
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, SQLAlchemyError):
        from xaiq.db.failures import describe
        from xaiq.db.session import default_db_url

        return str(describe(exc, default_db_url()))
    return str(exc)


def file_message(exc: OSError) -> str:
    """A file the command was told to read or write that the system refused (``--out`` an
    existing directory, a file where a folder is wanted, no permission, disk full), in one
    line naming the path."""
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    what = exc.strerror or type(exc).__name__
    return f"{' -> '.join(names)}: {what}" if names else f"file system: {what}"
