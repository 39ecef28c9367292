"""Throwaway PostgreSQL databases and a private Redis db for the service benches."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from bench.harness import Skip

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/12"  # the bench's own db index (tests use 11)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def postgres_url() -> Iterator[str]:
    """A new database on ``XAIQ_BENCH_PG_URL`` (default: local postgres), dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = make_url(os.environ.get("XAIQ_BENCH_PG_URL", PG_ADMIN_URL))
    admin_url = admin_url.set(drivername="postgresql+psycopg")
    name = f"xaiq_bench_{uuid.uuid4().hex[:10]}"  # our own name: hex digits only
    try:
        admin = create_engine(
            admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
        )
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        raise Skip(f"PostgreSQL not reachable: {_first_line(exc)}") from None
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        from xaiq.db.session import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def redis_url() -> str:
    """``XAIQ_BENCH_REDIS_URL`` (default db 12 on the local server), emptied; Skip if down."""
    import redis

    url = os.environ.get("XAIQ_BENCH_REDIS_URL", REDIS_URL)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
        client.flushdb()
    except Exception as exc:
        raise Skip(f"Redis not reachable at {url}: {_first_line(exc)}") from None
    return url
