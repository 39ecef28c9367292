"""Fixtures for the job system: a throwaway SQLite home, a throwaway PostgreSQL database,
a private Redis db index, and real scheduler/worker subprocesses.

Tests that need PostgreSQL or Redis skip when they are absent, unless
XAIQ_REQUIRE_SERVICES=1 (CI), where they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from xaiq.db.session import dispose_engines, get_engine


# Tests own one Redis db index (flushed before use); XAIQ_TEST_REDIS_DB lets two checkouts
# run their suites side by side on one server. Under pytest-xdist each worker process (gw0,
# gw1, ...) owns its own index: the base for gw0, then base + 2, base + 3, ... (base + 1 is
# the bench's Redis db, bench/README.md).
def _redis_db() -> int:
    base = int(os.environ.get("XAIQ_TEST_REDIS_DB", "11"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    return base if index == 0 else base + 1 + index


REDIS_DB = _redis_db()
PG_BASE = os.environ.get("XAIQ_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_BASE = os.environ.get("XAIQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def missing_service(reason: str) -> None:
    if os.environ.get("XAIQ_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty XAIQ_HOME (SQLite store + artifacts) with no broker configured."""
    monkeypatch.setenv("XAIQ_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XAIQ_DB_URL", raising=False)
    monkeypatch.delenv("XAIQ_ARTIFACTS", raising=False)
    monkeypatch.delenv("XAIQ_BROKER_URL", raising=False)
    yield tmp_path / "home"
    dispose_engines()


def _admin_url() -> str:
    return make_url(PG_BASE).set(database="postgres").render_as_string(hide_password=False)


def create_pg_database() -> str:
    import psycopg

    name = f"xaiq_test_{uuid.uuid4().hex[:10]}"
    admin = _admin_url().replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # name built from hex digits only
    except psycopg.OperationalError as exc:
        missing_service(f"PostgreSQL at {make_url(admin).render_as_string()}: {exc}")
    return make_url(PG_BASE).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    import psycopg

    dispose_engines()
    name = make_url(url).database
    admin = _admin_url().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (migrated), dropped afterwards."""
    url = create_pg_database()
    try:
        from xaiq.db.session import upgrade

        upgrade(get_engine(url, migrate=False))
        yield url
    finally:
        drop_pg_database(url)


def private_redis_url() -> str:
    import redis

    base = REDIS_BASE if REDIS_BASE.count("/") >= 3 else REDIS_BASE + "/0"
    url = base.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
        client.flushdb()
    except Exception as exc:
        missing_service(f"Redis at {url}: {exc}")
    return url


class Cluster:
    """A scheduler and workers as real subprocesses on one PostgreSQL db and one Redis db."""

    def __init__(self, db_url: str, broker_url: str, artifacts: Path) -> None:
        self.db_url, self.broker_url, self.artifacts = db_url, broker_url, artifacts
        self.procs: list[subprocess.Popen] = []
        self.env = {
            **os.environ,
            "XAIQ_DB_URL": db_url,
            "XAIQ_BROKER_URL": broker_url,
            "XAIQ_ARTIFACTS": str(artifacts),
            "XAIQ_HEARTBEAT_SECONDS": "1",
            "XAIQ_LEASE_SECONDS": "4",
        }
        self.logs = artifacts.parent / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def start(self, *args: str, name: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "xaiq.cli.main", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill the worker and its pool
        )
        self.procs.append(proc)
        return proc

    def worker(self, name: str) -> subprocess.Popen:
        return self.start("worker", "-c", "1", "--threads", "1", "-n", f"{name}@%h", name=name)

    def scheduler(self, max_in_flight: int = 2) -> subprocess.Popen:
        return self.start(
            "scheduler", "--max-in-flight", str(max_in_flight), "--interval", "0.2", name="sched"
        )

    def wait_workers(self, n: int, timeout: float = 90.0) -> None:
        from xaiq.db.jobs import live_workers
        from xaiq.db.session import read_session

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with read_session(get_engine(self.db_url)) as session:
                if len(live_workers(session, 5.0)) >= n:
                    return
            time.sleep(0.5)
        raise AssertionError(f"{n} workers did not start; logs in {self.logs}")

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(proc)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """PostgreSQL + Redis + the scheduler + two single-thread workers, for a test module."""
    db_url = create_pg_database()
    try:
        broker = private_redis_url()
        from xaiq.db.session import upgrade

        upgrade(get_engine(db_url, migrate=False))
        c = Cluster(db_url, broker, tmp_path_factory.mktemp("cluster") / "artifacts")
        c.scheduler()
        c.worker("w1")
        c.worker("w2")
        try:
            c.wait_workers(2)
            yield c
        finally:
            c.stop()
    finally:
        drop_pg_database(db_url)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
