"""A store that fails after connecting: read-only, full, locked past the retry window, its
file deleted mid-job, its schema dropped under a running scheduler, PostgreSQL restarting
under `xaiq wait`. Each gives one line naming the store (exit 3) or is waited out, and never
reports a job ``succeeded`` whose rows went nowhere."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from xaiq.db.jobs import request_cancel
from xaiq.db.session import dispose_engines, get_engine
from xaiq.scheduler.submit import submit

from .checks import progress, shards
from .faults import JOB_NOT_OK, STORE, fill, one_line, remount_read_only, sqlite_procs, tmpfs
from .services import PrivatePostgres, Procs, wait_for

SUBMIT = ("submit", "attribution", "--dataset", "digits", "--model", "digits-cnn")
SALIENCY = ("--methods", "saliency", "--limit", "4", "--json")


def _store_in(procs: Procs, folder: Path) -> Procs:
    db = folder / "xaiq.sqlite"
    procs.db_url = procs.env["XAIQ_DB_URL"] = f"sqlite:///{db}"
    return procs


def _one_job(url: str) -> None:
    """A finished one-shard job in the store at ``url`` (run here, not in a subprocess)."""
    from xaiq.worker.local import run_spec

    spec = {"kind": "attribution", "dataset": "digits", "model": "digits-cnn", "limit": 2}
    assert run_spec({**spec, "methods": ["saliency"]}, engine=get_engine(url))["status"] == (
        "succeeded"
    )
    dispose_engines()


def test_a_read_only_store_can_be_listed_and_refuses_a_submit_with_one_line(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "ro", "4m") as mnt:
        procs = _store_in(sqlite_procs(tmp_path), mnt)
        _one_job(procs.db_url)
        remount_read_only(mnt)
        listed = procs.run("list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert '"succeeded"' in listed.stdout
        one_line(procs.run(*SUBMIT, *SALIENCY), STORE, str(mnt), "read-only")


def test_a_full_disk_under_the_store_gives_one_line_and_no_job_succeeds(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full", "1m") as mnt:
        procs = _store_in(sqlite_procs(tmp_path), mnt)
        get_engine(procs.db_url)  # creates and migrates the store
        dispose_engines()
        fill(mnt, 64 * 1024)
        proc = procs.run(*SUBMIT, "--methods", "saliency", "--limit", "200", "--json")
        one_line(proc, STORE, str(mnt), "full")
        (mnt / "filler").unlink()
        listed = procs.run("list", "--json")
        assert listed.returncode == 0 and '"succeeded"' not in listed.stdout, listed.stdout


def test_a_lock_held_past_the_retry_window_gives_one_line_and_reads_still_work(
    tmp_path: Path,
) -> None:
    procs = sqlite_procs(tmp_path, XAIQ_DB_RETRY_SECONDS="1")
    _one_job(procs.db_url)
    holder = sqlite3.connect(procs.db_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer that does not let go
        started = time.monotonic()
        listed = procs.run("list", "--json")  # readers never wait for a writer's lock
        assert listed.returncode == 0 and '"succeeded"' in listed.stdout, listed.stderr
        one_line(procs.run(*SUBMIT, *SALIENCY), STORE, "locked", procs.db_url)
        assert time.monotonic() - started < 60
    finally:
        holder.rollback()
        holder.close()


def test_deleting_the_sqlite_file_mid_job_ends_with_one_line_not_success(tmp_path: Path) -> None:
    procs = sqlite_procs(tmp_path, XAIQ_TEST_SAMPLE_DELAY="0.15")
    db = Path(procs.db_url.removeprefix("sqlite:///"))
    args = (*SUBMIT, "--methods", "saliency", "--limit", "12", "--shard-size", "4", "--json")
    proc = procs.start("submitter", *args)
    wait_for(lambda: db.exists() and _shards_done(db) >= 1, 120, "the first shard")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    proc.wait(timeout=120)
    log = (procs.logs / "submitter.log").read_text()
    done = subprocess.CompletedProcess(args, proc.returncode, stdout="", stderr=log)
    one_line(done, STORE, "deleted or replaced", str(db))


def _shards_done(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT count(*) FROM shards WHERE status='done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def _sessions(url: str) -> int:
    with get_engine(url, migrate=False).connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            ).scalar_one()
        )


def _drop_schema(url: str) -> None:
    with get_engine(url, migrate=False).begin() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        for name in list(tables):
            conn.execute(text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))


@pytest.mark.services
def test_the_scheduler_survives_its_schema_being_dropped_and_resumes_after_upgrade(
    procs_pg: Procs,
) -> None:
    sched = procs_pg.scheduler(interval=0.2)
    log = procs_pg.logs / "scheduler.log"
    wait_for(lambda: "scheduler" in log.read_text(), 60, "the scheduler to start")
    _drop_schema(procs_pg.db_url)
    wait_for(lambda: "has no xaiq schema" in log.read_text(), 60, "the scheduler's one line")
    time.sleep(2)
    assert sched.poll() is None, log.read_text()[-2000:]
    assert log.read_text().count("has no xaiq schema") == 1  # not once per tick
    assert "Traceback" not in log.read_text()
    one_line(procs_pg.run("list"), STORE, "no xaiq schema", "db upgrade")
    assert procs_pg.run("db", "upgrade").returncode == 0
    spec = {
        "kind": "attribution", "dataset": "digits", "model": "digits-cnn",
        "methods": ["saliency"], "limit": 4,
    }  # fmt: skip
    engine = get_engine(procs_pg.db_url)
    job = submit(spec, engine=engine, local=False, broker=procs_pg.broker_url).job_id
    wait_for(
        lambda: shards(procs_pg.db_url, job)[0].status.value == "queued", 60, "a publish"
    )  # the same scheduler process, back at work
    assert sched.poll() is None
    dispose_engines()


@pytest.mark.services
def test_wait_survives_a_brief_postgres_restart(
    tmp_path: Path, private_pg: PrivatePostgres, pg_db: str
) -> None:
    spec = {
        "kind": "attribution", "dataset": "digits", "model": "digits-cnn",
        "methods": ["saliency"], "limit": 4,
    }  # fmt: skip
    job = submit(spec, engine=get_engine(pg_db), local=True).job_id  # nobody runs it
    procs = Procs(tmp_path, pg_db, None, XAIQ_DB_RETRY_SECONDS="60")
    waiter = procs.start("wait", "wait", str(job), "--json")
    wait_for(lambda: _sessions(pg_db) >= 2, 60, "`xaiq wait` to connect")  # us + the waiter
    private_pg.restart(down_seconds=2)
    dispose_engines()
    time.sleep(1)
    assert waiter.poll() is None, (procs.logs / "wait.log").read_text()
    request_cancel(get_engine(pg_db), job)
    assert waiter.wait(timeout=60) == JOB_NOT_OK
    out = (procs.logs / "wait.log").read_text()
    assert "Traceback" not in out and '"cancelled"' in out, out
    assert progress(pg_db, job)["status"] == "cancelled"
    dispose_engines()


def test_db_upgrade_to_an_unknown_revision_is_one_line_naming_the_known_ones(
    tmp_path: Path,
) -> None:
    procs = sqlite_procs(tmp_path)
    one_line(procs.run("db", "upgrade", "--revision", "bogus"), 2, "'bogus'", "0001")
