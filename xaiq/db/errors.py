"""Errors of the store layer.

DbError                  root
├── DbConnectError       the database URL cannot be reached or used
├── StoreError           the database failed after connecting (read-only, full, locked,
│                        its schema gone, its file deleted or replaced)
├── NotFoundError        an unknown job / shard / sample id
├── QueryError           a bad query argument (unknown group-by key, metric, format)
└── TransitionError      a job or shard status change that xaiq.db.transitions refuses
"""

from __future__ import annotations


class DbError(Exception):
    """Root of the errors raised by ``xaiq.db``."""


class DbConnectError(DbError):
    """The database cannot be reached or used (the URL is printed without its password)."""


class StoreError(DbError):
    """The database failed after connecting; the message names it (password masked) and
    what happened, in one line."""


class NotFoundError(DbError, LookupError):
    """An id that is not in the store."""


class QueryError(DbError, ValueError):
    """A query argument outside its fixed set of allowed values."""


class TransitionError(DbError):
    """A status change that the transition table does not allow (the message names the row,
    both statuses and what the status may become)."""
