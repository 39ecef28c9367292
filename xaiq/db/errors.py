"""Errors of the store layer.

DbError                  root
├── DbConnectError       the database URL cannot be reached or used
├── NotFoundError        an unknown job / shard / sample id
└── QueryError           a bad query argument (unknown group-by key, metric, format)
"""

from __future__ import annotations


class DbError(Exception):
    """Root of the errors raised by ``xaiq.db``."""


class DbConnectError(DbError):
    """The database cannot be reached or used (the URL is printed without its password)."""


class NotFoundError(DbError, LookupError):
    """An id that is not in the store."""


class QueryError(DbError, ValueError):
    """A query argument outside its fixed set of allowed values."""
