"""A database failure after connecting, as one line that says what happened to which store.

SQLite and PostgreSQL report the same situations in different words; users need the
situation (read-only, full, locked, schema gone, file replaced) and the store's URL, password
masked, without a traceback. The SQLite file guard notices a database file deleted or
replaced under a running process, which SQLite itself does not: its open handle keeps
writing into the unlinked file, and a job would end ``succeeded`` with its rows nowhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from xaiq.db.errors import StoreError
from xaiq.db.urls import redact_url, scrub

# (what the driver says, what it means): lower-case substrings, first match wins
_SITUATIONS = (
    ("readonly database", "is read-only"),
    ("read-only", "is read-only"),
    ("disk is full", "is full (no space left for the database)"),
    ("no space left", "is full (no space left for the database)"),
    ("could not extend file", "is full (no space left for the database)"),
    ("database is locked", "is locked by another writer (waited XAIQ_DB_RETRY_SECONDS)"),
    ("no such table", "has no xaiq schema (dropped or recreated?): run `xaiq db upgrade`"),
    ("does not exist", "has no xaiq schema (dropped or recreated?): run `xaiq db upgrade`"),
    ("disk i/o error", "cannot be written (disk I/O error)"),
    ("unable to open database", "cannot be opened"),
    ("connection", "lost its connection"),
    ("server closed", "lost its connection"),
    ("terminating", "lost its connection"),
)


def first_line(exc: BaseException) -> str:
    msg = str(getattr(exc, "orig", None) or exc).strip()
    return msg.splitlines()[0] if msg else type(exc).__name__


def describe(exc: BaseException, url: str) -> StoreError:
    """``exc`` (a SQLAlchemy or driver error) as a :class:`StoreError` naming the store."""
    if isinstance(exc, StoreError):
        return exc
    detail = scrub(first_line(exc), url)
    low = detail.lower()
    what = next((meaning for words, meaning in _SITUATIONS if words in low), "failed")
    return StoreError(f"the store {redact_url(url)} {what}: {detail}")


class FileGuard:
    """Remembers which file a SQLite database is (device and inode) and refuses to go on
    once that path is gone or holds another file."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        st = os.stat(self.path)
        self.ident = (st.st_dev, st.st_ino)

    def check(self, url: str) -> None:
        try:
            st = os.stat(self.path)
            same = (st.st_dev, st.st_ino) == self.ident
        except OSError:
            same = False
        if not same:
            raise StoreError(
                f"the store {redact_url(url)} was deleted or replaced while in use: "
                "nothing more is written to it (the rows written since it went are lost)"
            )
