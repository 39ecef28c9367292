"""Private Redis and PostgreSQL servers for fault tests, and a process cluster on top of them.

Each server runs on a free port with its data in a fresh temporary directory, so restarting or
killing it never touches the machine's own services. Both are stopped and their directories
removed when the fixture ends. Without the binaries the tests skip, unless
``XAIQ_REQUIRE_SERVICES=1`` (CI), where they fail.

Test-only hooks (``tests/reliability/hooks/sitecustomize.py``, honoured only by processes this
module starts, because only they get that directory on ``PYTHONPATH``):

- ``XAIQ_TEST_SAMPLE_DELAY=<seconds>``: every sample load sleeps that long (shards long enough
  to be interrupted, without burning CPU);
- ``XAIQ_TEST_CRASH_KEY=<sample key>``: loading that sample ends the process at once
  (``os._exit(70)``), like a segfault in a native decoder would.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HOOKS = Path(__file__).parent / "hooks"
ROOT = Path(__file__).resolve().parents[2]


def missing_service(reason: str) -> None:
    if os.environ.get("XAIQ_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class PrivateRedis:
    """``redis-server`` on a free port; ``appendonly`` keeps queued messages across a crash
    (the configuration docs/operations.md asks for in production)."""

    def __init__(self, workdir: Path, *, password: str | None = None, durable: bool = True):
        binary = shutil.which("redis-server")
        if binary is None:
            missing_service("redis-server is not installed")
        self.binary = str(binary)
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.durable = durable
        self.proc: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")]
        if self.durable:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _port_open(self.port), 20, f"redis on port {self.port}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        wait_for(lambda: not _port_open(self.port), 20, f"redis on {self.port} to stop")

    def restart(self, sig: int = signal.SIGKILL, down_seconds: float = 1.0) -> None:
        self.stop(sig)
        time.sleep(down_seconds)
        self.start()


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    binary = shutil.which(name)
    if binary is None:
        missing_service(f"PostgreSQL's {name} is not installed")
    return str(binary)


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (``initdb`` + ``pg_ctl``), trust auth on 127.0.0.1.

    As root, the server runs as the ``postgres`` user (PostgreSQL refuses root), so its data
    directory is a fresh ``/tmp/xaiq-pg-*`` owned by that user.
    """

    def __init__(self) -> None:
        self.pg_ctl = _pg_bin("pg_ctl")
        self.initdb = _pg_bin("initdb")
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="xaiq-pg-"))
        self.data = self.base / "data"
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            self.prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.base, "postgres", "postgres")
        self._run(
            [
                self.initdb,
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            "initdb",
        )

    def _run(self, args: list[str], what: str) -> None:
        proc = subprocess.run(self.prefix + args, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            missing_service(f"{what} failed: {(proc.stderr or proc.stdout).strip()[-400:]}")

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        auth = f"postgres:{password}" if password else "postgres"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        log = str(self.base / "server.log")
        self._run(
            [self.pg_ctl, "-D", str(self.data), "-o", opts, "-l", log, "-w", "-t", "60", "start"],
            "pg_ctl start",
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            self.prefix + [self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"],
            capture_output=True,
            timeout=90,
        )

    def restart(self, mode: str = "immediate", down_seconds: float = 1.0) -> None:
        """Stop (``immediate`` = crash-like: connections cut, no checkpoint) and start again."""
        self.stop(mode)
        time.sleep(down_seconds)
        self.start()

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # names come from the tests, not users
        return self.url(name)

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.cleanup()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    try:
        yield redis
    finally:
        redis.stop(signal.SIGKILL)


class Procs:
    """``xaiq`` subprocesses (scheduler, workers, submitters) on one store and one broker,
    each in its own process group, with the test hooks on ``PYTHONPATH``."""

    def __init__(self, workdir: Path, db_url: str, broker_url: str | None, **env: str) -> None:
        self.workdir = workdir
        self.artifacts = workdir / "artifacts"
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.db_url, self.broker_url = db_url, broker_url
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HOOKS), str(ROOT)]),
            "XAIQ_DB_URL": db_url,
            "XAIQ_ARTIFACTS": str(self.artifacts),
            "XAIQ_HOME": str(workdir / "home"),
            "XAIQ_HEARTBEAT_SECONDS": "1",
            "XAIQ_LEASE_SECONDS": "4",
            "XAIQ_QUEUED_TIMEOUT": "10",
            "OMP_NUM_THREADS": "1",
            **env,
        }
        if broker_url:
            self.env["XAIQ_BROKER_URL"] = broker_url
        else:
            self.env.pop("XAIQ_BROKER_URL", None)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "xaiq.cli.main", *args],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.workdir,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def run(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "xaiq.cli.main", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.workdir,
        )

    def worker(
        self, name: str, concurrency: int = 1, loglevel: str = "INFO", **env: str
    ) -> subprocess.Popen:
        args = (
            "worker",
            "-c",
            str(concurrency),
            "--threads",
            "1",
            "-n",
            f"{name}@%h",
            "--loglevel",
            loglevel,
        )
        return self.start(name, *args, **env)

    def scheduler(
        self, max_in_flight: int = 4, name: str = "scheduler", interval: float = 0.1
    ) -> subprocess.Popen:
        args = ("scheduler", "--max-in-flight", str(max_in_flight), "--interval", str(interval))
        return self.start(name, *args)

    def signal(self, name: str, sig: int, wait: bool = True) -> None:
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        if wait:
            proc.wait(timeout=60)

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def all_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
