"""Fixtures for the reliability tests: private servers (see services.py) and checks that every
sample of a job is accounted for exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from xaiq.db.session import dispose_engines, get_engine, upgrade

from .services import PrivatePostgres, PrivateRedis, Procs, private_pg, private_redis  # noqa: F401


def fresh_pg_database(pg: PrivatePostgres) -> str:
    url = pg.create_database(f"xaiq_rel_{uuid.uuid4().hex[:10]}")
    upgrade(get_engine(url, migrate=False))
    return url


@pytest.fixture
def pg_db(private_pg: PrivatePostgres) -> Iterator[str]:  # noqa: F811
    """A fresh, migrated database on the private PostgreSQL server."""
    yield fresh_pg_database(private_pg)
    dispose_engines()


@pytest.fixture
def procs_pg(tmp_path: Path, pg_db: str, private_redis: PrivateRedis) -> Iterator[Procs]:  # noqa: F811
    p = Procs(tmp_path, pg_db, private_redis.url())
    try:
        yield p
    finally:
        p.stop_all()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty XAIQ_HOME (SQLite store + artifacts) with no broker configured."""
    monkeypatch.setenv("XAIQ_HOME", str(tmp_path / "home"))
    for var in ("XAIQ_DB_URL", "XAIQ_ARTIFACTS", "XAIQ_BROKER_URL"):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path / "home"
    dispose_engines()
