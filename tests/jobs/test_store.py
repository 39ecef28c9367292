"""The store: migrations, SQLite settings, idempotent writes, leases, finalisation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event, func, select, update

from xaiq.db.errors import DbConnectError
from xaiq.db.jobs import (
    claim_shard,
    complete_shard,
    create_job,
    fail_attempt,
    finalize_job,
    insert_ignore,
    job_progress,
    reap_expired,
    request_cancel,
    reset_failed_shards,
)
from xaiq.db.models import Base, Job, JobStatus, SampleRow, Shard, ShardStatus
from xaiq.db.session import get_engine, read_session, write_session

SPEC = {"kind": "attribution", "dataset": "digits", "model": "m", "max_attempts": 2}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, home) -> Iterator[Engine]:  # noqa: ANN001
    if request.param == "sqlite":
        yield get_engine()
    else:
        yield get_engine(request.getfixturevalue("pg_url"))


def _job(engine: Engine, n: int = 4, shard: int = 2) -> int:
    ranges = [(a, min(a + shard, n)) for a in range(0, n, shard)]
    return create_job(
        engine, kind="attribution", spec={**SPEC, "shard_size": shard}, ranges=ranges, queue="cpu"
    )


def _shard_ids(engine: Engine, job_id: int) -> list[int]:
    with read_session(engine) as s:
        return list(s.scalars(select(Shard.id).where(Shard.job_id == job_id).order_by(Shard.index)))


def _sample(job_id: int, i: int) -> dict:
    return {
        "job_id": job_id,
        "sample_index": i,
        "key": f"k{i}",
        "label": 1,
        "pred": 1,
        "target": 1,
        "prob_pred": 0.9,
        "prob_target": 0.9,
        "correct": True,
        "probs": None,
    }


def _samples(engine: Engine, job_id: int) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).where(SampleRow.job_id == job_id)) or 0


def test_the_migrated_schema_matches_the_models(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(home) -> None:  # noqa: ANN001
    engine = get_engine()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_sqlite_writers_begin_immediate_and_readers_do_not(home) -> None:  # noqa: ANN001
    engine = get_engine()
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    with write_session(engine) as s:
        s.execute(select(1))
    with read_session(engine) as s:
        s.execute(select(1))
    begins = [q for q in seen if q.startswith("BEGIN")]
    assert begins == ["BEGIN IMMEDIATE", "BEGIN"]


def test_an_unreachable_database_fails_with_the_password_redacted() -> None:
    with pytest.raises(DbConnectError) as err:
        get_engine("postgresql://alice:s3cret@127.0.0.1:1/nowhere")
    assert "s3cret" not in str(err.value) and "127.0.0.1:1" in str(err.value)


def test_insert_or_ignore_writes_each_unique_row_once(engine: Engine) -> None:
    job_id = _job(engine)
    for _ in range(2):
        with write_session(engine) as s:
            insert_ignore(s, SampleRow, [_sample(job_id, 0), _sample(job_id, 1)])
    assert _samples(engine, job_id) == 2


def test_a_worker_whose_lease_was_taken_over_writes_nothing(engine: Engine) -> None:
    job_id = _job(engine)
    shard = _shard_ids(engine, job_id)[0]
    first = claim_shard(engine, shard, "a", 60, from_pending=True)
    assert first is not None and first.attempt == 1
    assert claim_shard(engine, shard, "b", 60, from_pending=True) is None  # leased
    with write_session(engine) as s:  # the lease runs out
        s.execute(
            update(Shard).where(Shard.id == shard).values(lease_expires_at=dt.datetime(2000, 1, 1))
        )
    second = claim_shard(engine, shard, "b", 60)
    assert second is not None and second.attempt == 2
    assert not complete_shard(engine, first, {"samples": [_sample(job_id, 0)]})
    assert _samples(engine, job_id) == 0
    assert complete_shard(engine, second, {"samples": [_sample(job_id, 0), _sample(job_id, 1)]})
    assert _samples(engine, job_id) == 2
    assert claim_shard(engine, shard, "c", 60, from_pending=True) is None  # done


def test_expired_leases_go_back_to_pending_then_fail_at_the_attempt_cap(engine: Engine) -> None:
    job_id = _job(engine, n=2)
    shard = _shard_ids(engine, job_id)[0]
    for expected in ("pending", "failed"):
        assert claim_shard(engine, shard, "w", -1, from_pending=True) is not None  # expired
        assert (shard, expected) in reap_expired(engine)
    with read_session(engine) as s:
        row = s.get(Shard, shard)
        assert row is not None and row.attempts == 2 and "2 attempts" in (row.error or "")
        assert finalize_job(s, job_id) is JobStatus.failed


def test_a_failed_attempt_is_retried_until_the_cap(engine: Engine) -> None:
    job_id = _job(engine, n=2)
    shard = _shard_ids(engine, job_id)[0]
    claim = claim_shard(engine, shard, "w", 60, from_pending=True)
    assert claim is not None
    assert fail_attempt(engine, claim, "boom", 2) is ShardStatus.pending
    claim = claim_shard(engine, shard, "w", 60, from_pending=True)
    assert claim is not None
    assert fail_attempt(engine, claim, "boom", 2) is ShardStatus.failed
    assert reset_failed_shards(engine, job_id) == 1  # `xaiq retry`
    with read_session(engine) as s:
        row = s.get(Shard, shard)
        assert row is not None and row.status is ShardStatus.pending and row.attempts == 0


def _finish(engine: Engine, job_id: int, errors: list[int]) -> JobStatus:
    for shard in _shard_ids(engine, job_id):
        claim = claim_shard(engine, shard, "w", 60, from_pending=True)
        assert claim is not None
        rows = {
            "samples": [_sample(job_id, i) for i in range(claim.start, claim.stop)],
            "sample_errors": [
                {"job_id": job_id, "sample_index": i, "stage": "load", "message": "bad"}
                for i in errors
                if claim.start <= i < claim.stop
            ],
        }
        assert complete_shard(engine, claim, rows)
    with write_session(engine) as s:
        return finalize_job(s, job_id)


def test_finalisation_distinguishes_succeeded_partial_and_failed(engine: Engine) -> None:
    assert _finish(engine, _job(engine), []) is JobStatus.succeeded
    assert _finish(engine, _job(engine), [1]) is JobStatus.partial
    assert _finish(engine, _job(engine), [0, 1, 2, 3]) is JobStatus.failed


def test_cancelling_stops_unstarted_shards_at_once(engine: Engine) -> None:
    job_id = _job(engine, n=6)
    shards = _shard_ids(engine, job_id)
    assert claim_shard(engine, shards[0], "w", 60, from_pending=True) is not None
    counts = request_cancel(engine, job_id)
    assert counts == {**counts, "running": 1, "cancelled": 2, "pending": 0}
    assert claim_shard(engine, shards[1], "w", 60, from_pending=True) is None
    with read_session(engine) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.cancel_requested and job.finished_at is None


def test_a_database_without_the_schema_is_refused_with_the_upgrade_hint() -> None:
    from .conftest import create_pg_database, drop_pg_database

    url = create_pg_database()
    try:
        with pytest.raises(DbConnectError, match="run `xaiq db upgrade` first"):
            get_engine(url)
        get_engine(url, migrate=True)  # what `xaiq db upgrade` does
        with read_session(get_engine(url)) as s:
            assert s.scalar(select(func.count()).select_from(Job)) == 0
    finally:
        drop_pg_database(url)


def test_a_pooled_connection_closed_by_the_server_is_replaced_after_an_idle_pause(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ping on every checkout, but one after an idle pause: a connection the server
    dropped meanwhile (a restart, an idle timeout) is replaced, not handed out dead."""
    import time

    from sqlalchemy import create_engine, text

    from xaiq.db import session as db_session

    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_SECONDS", 0.2)
    engine = get_engine(pg_url)
    pings: list[int] = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda c: pings.append(1) or real_ping(c))
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    for _ in range(3):  # back to back: no pings
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == pid
    assert pings == []
    killer = create_engine(engine.url)  # another client
    with killer.connect() as other:
        assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    killer.dispose()
    time.sleep(0.3)
    with engine.connect() as conn:  # pinged, found dead, replaced
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    assert pings


def test_stage_counts_of_workers_elsewhere_come_from_the_store(engine: Engine) -> None:
    """Each running shard's worker stores its stage counts with its progress; `xaiq status`
    (another process) adds them up: finished shards whole, running ones as stored, others
    by their samples done."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from xaiq.db.lifecycle import shard_progress, suspend_shard

    spec = {
        "kind": "disagreement",
        "dataset": "digits",
        "model": "m",
        "methods": ["saliency", "grad_cam"],
        "faithfulness": True,
        "shard_size": 4,
    }
    ranges = [(0, 4), (4, 8), (8, 12)]
    job_id = create_job(engine, kind="disagreement", spec=spec, ranges=ranges, queue="cpu")
    first, second, third = _shard_ids(engine, job_id)
    done = claim_shard(engine, first, "a", 60, from_pending=True)
    assert done is not None
    assert complete_shard(engine, done, {"samples": [_sample(job_id, i) for i in range(4)]})
    assert claim_shard(engine, second, "b", 60, from_pending=True) is not None
    counts = {"explain": 3, "compare": 2, "faithfulness": 0}
    assert not shard_progress(engine, second, "b", 2, stage="compare", stage_done=counts)
    with read_session(engine) as s:
        p = job_progress(s, job_id)
    assert p["stages"] == {
        "stage": "compare",
        "done": {"explain": 4 + 3, "compare": 4 + 2, "faithfulness": 4 + 0},
    }
    url = engine.url.render_as_string(hide_password=False)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "XAIQ_DB_URL": url, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-m", "xaiq.cli.main", "status", str(job_id), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["stages"] == p["stages"]
    table = subprocess.run(
        [sys.executable, "-m", "xaiq.cli.main", "status", str(job_id)],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "stage compare (explain 7/12, compare 6/12, faithfulness 4/12)" in table.stdout
    # a shard put back (its worker stopped) counts its samples done for every stage
    assert suspend_shard(engine, second, "b", {}, 2, cancelled=False)
    assert claim_shard(engine, third, "c", 60, from_pending=True) is not None
    with read_session(engine) as s:
        p = job_progress(s, job_id)
    assert p["stages"] == {"stage": None, "done": dict.fromkeys(counts, 4 + 2)}
