"""The attempt cap holds on every path that re-runs a shard, not only in the lease reaper."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from xaiq.db.jobs import claim_shard, create_job, reap_expired
from xaiq.db.models import Shard, utcnow
from xaiq.db.session import get_engine, read_session, write_session


def _expire(engine, shard_id: int) -> None:  # noqa: ANN001
    with write_session(engine) as session:
        session.execute(update(Shard).where(Shard.id == shard_id).values(lease_expires_at=utcnow()))


def test_a_redelivered_message_after_the_last_attempt_fails_the_shard_instead_of_running_it(
    home: Path,
) -> None:
    engine = get_engine()
    spec = {"dataset": "digits", "model": "digits-cnn", "max_attempts": 2, "shard_size": 4}
    job = create_job(engine, kind="attribution", spec=spec, ranges=[(0, 4)], queue="cpu")
    with read_session(engine) as session:
        shard_id = session.query(Shard.id).filter(Shard.job_id == job).scalar()
    first = claim_shard(engine, shard_id, "w1", 60, from_pending=True)
    assert first is not None and first.attempt == 1
    _expire(engine, shard_id)  # the worker died; a redelivery arrives before the reaper runs
    second = claim_shard(engine, shard_id, "w2", 60)
    assert second is not None and second.attempt == 2
    _expire(engine, shard_id)  # died again, on the last allowed attempt
    assert claim_shard(engine, shard_id, "w3", 60) is None
    with read_session(engine) as session:
        shard = session.get(Shard, shard_id)
        assert shard is not None and shard.status.value == "failed" and shard.attempts == 2
        assert shard.error == "failed after 2 attempts: lease of w2 expired (worker lost?)"
    assert reap_expired(engine) == []  # nothing left for the reaper
