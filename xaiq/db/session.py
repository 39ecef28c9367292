"""Engines and sessions: SQLite (default, WAL, busy timeout, immediate writes) or PostgreSQL.

Configuration: ``XAIQ_DB_URL`` (default ``sqlite:///$XAIQ_HOME/xaiq.sqlite``),
``XAIQ_ARTIFACTS`` (a path or an fsspec URL, default ``$XAIQ_HOME/artifacts``),
``XAIQ_HOME`` (default ``./xaiq-data``).

``get_engine(url)`` is cached per URL. Readers use :func:`read_session`; writers use
:func:`write_session`, which on SQLite opens the transaction with ``BEGIN IMMEDIATE`` so two
writers never deadlock on a lock upgrade (the second waits up to the busy timeout instead).
The embedded SQLite default is migrated to the latest schema on first use.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import Session

from xaiq.db.errors import DbConnectError
from xaiq.db.failures import FileGuard, describe, first_line
from xaiq.db.retry import retry_seconds
from xaiq.db.urls import normalise_url, redact_url, scrub

SQLITE_BUSY_TIMEOUT_MS = 30_000  # at most; XAIQ_DB_RETRY_SECONDS, when shorter, caps it
_IMMEDIATE = "xaiq_immediate"

_engines: dict[str, Engine] = {}
_guards: dict[str, FileGuard] = {}  # SQLite file URL -> the file it was when first opened
_lock = threading.Lock()


def xaiq_home() -> Path:
    return Path(os.environ.get("XAIQ_HOME", "xaiq-data"))


def default_db_url() -> str:
    url = os.environ.get("XAIQ_DB_URL")
    if url:
        return url
    return f"sqlite:///{xaiq_home() / 'xaiq.sqlite'}"


def artifact_location() -> str:
    """``XAIQ_ARTIFACTS`` as given (a path or an fsspec URL such as ``s3://bucket/prefix``);
    default ``$XAIQ_HOME/artifacts``."""
    return os.environ.get("XAIQ_ARTIFACTS") or str(xaiq_home() / "artifacts")


def artifact_root() -> Path:
    """:func:`artifact_location` as a local path (meaningful only for a local store)."""
    return Path(artifact_location())


def _first_line(exc: BaseException, url: str = "") -> str:
    return scrub(first_line(exc), url)


def _busy_ms() -> int:
    return int(min(SQLITE_BUSY_TIMEOUT_MS, retry_seconds() * 1000))


# A pooled connection idle longer than this is pinged before use (a server restart or an
# idle timeout may have closed it; the pool then reconnects). One used moments ago is not:
# a pre-ping on every checkout cost a round trip per session, about a tenth of a worker's
# time on one-sample shards. A connection lost within the window fails its statement, and
# the callers that must survive a restart retry it (:mod:`xaiq.db.retry`).
PING_AFTER_IDLE_SECONDS = 1.0


def _install_idle_ping(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE_SECONDS:
            return  # just connected, or used moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool drops this connection and connects again
            raise DisconnectionError(str(exc)) from exc


def _install_sqlite_hooks(engine: Engine, read_only: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # let SQLAlchemy, not pysqlite, decide when transactions begin
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not read_only:  # WAL needs its -shm file next to the database
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={_busy_ms()}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_read_only_uri(db: str) -> str | None:
    """A ``file:`` URI opening ``db`` read-only when its directory cannot be written (a
    read-only file system or mount): SQLite cannot create the WAL's ``-shm`` file there, and
    nobody can change the file meanwhile, so it is opened ``immutable``."""
    from urllib.parse import quote

    path = Path(db)
    if not path.is_file() or os.access(path.parent, os.W_OK):
        return None
    immutable = "" if Path(f"{db}-wal").exists() else "&immutable=1"
    return f"file:{quote(str(path.resolve()))}?mode=ro{immutable}"


def _create(url: str) -> Engine:
    try:
        parsed = make_url(normalise_url(url))
    except Exception:
        raise DbConnectError(f"invalid database URL: {redact_url(url)}") from None
    kwargs: dict[str, Any] = {"future": True}
    read_only = False
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        connect_args: dict[str, Any] = {"timeout": _busy_ms() / 1000, "check_same_thread": False}
        if db and db != ":memory:":
            uri = _sqlite_read_only_uri(db)
            if uri is None:
                try:
                    Path(db).parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise DbConnectError(
                        f"cannot create {redact_url(url)}: {exc.strerror}"
                    ) from None
            else:
                import sqlite3

                read_only = True
                kwargs["creator"] = lambda: sqlite3.connect(uri, uri=True, **connect_args)
        kwargs["connect_args"] = connect_args
    else:
        plain_pg = parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2")
        if plain_pg:
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        engine = create_engine(parsed, **kwargs)
    except Exception as exc:
        raise DbConnectError(
            f"cannot use database {redact_url(url)}: {_first_line(exc, url)}"
        ) from None
    if engine.dialect.name == "sqlite":
        _install_sqlite_hooks(engine, read_only)
    else:
        _install_idle_ping(engine)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        engine.dispose()
        raise DbConnectError(
            f"cannot connect to {redact_url(url)}: {_first_line(exc, url)}"
        ) from None
    db = engine.url.database
    if engine.dialect.name == "sqlite" and db and db != ":memory:" and not read_only:
        _guards[str(engine.url)] = FileGuard(db)
    return engine


def check_file(engine: Engine) -> None:
    """Raise :class:`StoreError` when ``engine``'s SQLite file was deleted or replaced."""
    guard = _guards.get(str(engine.url))
    if guard is not None:
        guard.check(str(engine.url))


def _has_schema(engine: Engine) -> bool:
    from sqlalchemy import inspect

    try:
        return inspect(engine).has_table("jobs")
    except SQLAlchemyError:
        return False


def get_engine(url: str | None = None, *, migrate: bool | None = None) -> Engine:
    """The engine for ``url`` (default :func:`default_db_url`), created once per URL.

    ``migrate``: bring the schema to the latest revision on first use. Default: only for
    SQLite; another database is migrated explicitly with ``xaiq db upgrade``, and one without
    the schema is refused with that hint (``migrate=False`` skips the check).
    Raises :class:`DbConnectError` (URL redacted) when the database cannot be reached.
    """
    url = url or default_db_url()
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        engine = _create(url)
        if migrate is None and engine.dialect.name != "sqlite" and not _has_schema(engine):
            engine.dispose()
            raise DbConnectError(
                f"{redact_url(url)} has no xaiq schema yet: run `xaiq db upgrade` first"
            )
        if migrate or (
            migrate is None and engine.dialect.name == "sqlite" and not _at_head(engine)
        ):
            upgrade(engine)  # takes the write lock: only when there is something to migrate
        _engines[url] = engine
        return engine


def _at_head(engine: Engine) -> bool:
    """Whether the schema is at the latest revision (read-only: a reader never waits for a
    writer's lock, and a read-only store can be read)."""
    from xaiq.db.migrations import current_revision, head_revision

    try:
        return current_revision(engine) == head_revision()
    except SQLAlchemyError:
        return False


def dispose_engines() -> None:
    """Forget every cached engine (after a fork, or between tests)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def writer(engine: Engine) -> Engine:
    """``engine`` whose transactions start with ``BEGIN IMMEDIATE`` on SQLite."""
    return engine.execution_options(**{_IMMEDIATE: True})


@contextmanager
def write_session(engine: Engine | None = None) -> Iterator[Session]:
    """A session in one write transaction: committed on exit, rolled back on error.
    Refuses (:class:`StoreError`) to write to a SQLite file deleted or replaced since it was
    opened."""
    engine = engine or get_engine()
    check_file(engine)
    session = Session(writer(engine), expire_on_commit=False)
    with session, session.begin():
        yield session


@contextmanager
def read_session(engine: Engine | None = None) -> Iterator[Session]:
    """A read-only session (deferred transaction, rolled back on exit)."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        yield session


def upgrade(engine: Engine | None = None, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision`` on ``engine``."""
    from xaiq.db.migrations import run_upgrade

    engine = engine or get_engine(migrate=False)
    try:
        run_upgrade(engine, revision)
    except SQLAlchemyError as exc:
        url = engine.url.render_as_string(hide_password=False)
        raise describe(exc, url) from None
