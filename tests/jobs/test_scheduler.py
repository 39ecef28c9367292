"""The scheduler's choices, with a recording publisher instead of a broker."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, update

from xaiq.db.jobs import claim_shard, complete_shard, create_job, request_cancel
from xaiq.db.models import Heartbeat, Job, JobStatus, Shard, ShardStatus
from xaiq.db.session import get_engine, read_session, write_session
from xaiq.scheduler.loop import Scheduler


@pytest.fixture
def engine(home) -> Engine:  # noqa: ANN001
    return get_engine()


def _job(engine: Engine, shards: int, priority: int = 0, queue: str = "cpu") -> int:
    spec = {"kind": "attribution", "dataset": "d", "model": "m", "priority": priority}
    return create_job(
        engine,
        kind="attribution",
        spec=spec,
        ranges=[(i, i + 1) for i in range(shards)],
        queue=queue,
    )


class Recorder:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sent: list[tuple[int, str]] = []

    def __call__(self, shard_id: int, queue: str) -> None:
        self.sent.append((shard_id, queue))

    def jobs(self) -> list[int]:
        with read_session(self.engine) as s:
            return [s.get(Shard, i).job_id for i, _ in self.sent]  # type: ignore[union-attr]


def _finish_published(engine: Engine, rec: Recorder) -> None:
    for shard_id, _ in rec.sent:
        claim = claim_shard(engine, shard_id, "w", 60)
        if claim is not None:
            assert complete_shard(engine, claim, {})


def test_in_flight_shards_are_bounded_per_queue(engine: Engine) -> None:
    _job(engine, 5, queue="cpu")
    _job(engine, 5, queue="gpu")
    rec = Recorder(engine)
    sched = Scheduler(engine, rec, max_in_flight={"cpu": 2, "gpu": 3})
    sched.tick()
    assert sorted(q for _, q in rec.sent) == ["cpu", "cpu", "gpu", "gpu", "gpu"]
    sched.tick()  # nothing finished: nothing more goes out
    assert len(rec.sent) == 5
    with read_session(engine) as s:
        queued = s.scalars(select(Shard.status).where(Shard.id.in_([i for i, _ in rec.sent])))
        assert set(queued) == {ShardStatus.queued}


def test_higher_priority_goes_first_and_equal_priorities_take_turns(engine: Engine) -> None:
    low = _job(engine, 4, priority=0)
    a = _job(engine, 4, priority=5)
    b = _job(engine, 4, priority=5)
    rec = Recorder(engine)
    sched = Scheduler(engine, rec, max_in_flight=3)
    for _ in range(3):
        sched.tick()
        _finish_published(engine, rec)
    order = rec.jobs()
    assert order[:8].count(a) == 4 and order[:8].count(b) == 4
    assert order[:6] in ([a, b, a, b, a, b], [b, a, b, a, b, a])
    assert order[8:] == [low]


def test_a_new_high_priority_job_overtakes_a_running_large_one(engine: Engine) -> None:
    big = _job(engine, 20)
    rec = Recorder(engine)
    sched = Scheduler(engine, rec, max_in_flight=2)
    sched.tick()
    small = _job(engine, 1, priority=1)
    _finish_published(engine, rec)
    sched.tick()
    assert rec.jobs()[-2:] == [small, big]


def test_cancelled_and_local_jobs_are_never_published(engine: Engine) -> None:
    cancelled = _job(engine, 3)
    request_cancel(engine, cancelled)
    _job(engine, 3, queue="local")
    rec = Recorder(engine)
    Scheduler(engine, rec, max_in_flight=10).tick()
    assert rec.sent == []


def test_a_failed_publish_puts_the_shard_back_to_pending(engine: Engine) -> None:
    job_id = _job(engine, 1)

    def broken(shard_id: int, queue: str) -> None:
        raise ConnectionError("broker down")

    report = Scheduler(engine, broken, max_in_flight=1).tick()
    assert report.published == []
    with read_session(engine) as s:
        assert s.scalar(select(Shard.status).where(Shard.job_id == job_id)) is ShardStatus.pending


def test_an_expired_lease_is_republished_and_the_job_finalised(engine: Engine) -> None:
    job_id = _job(engine, 1)
    rec = Recorder(engine)
    sched = Scheduler(engine, rec, max_in_flight=1)
    sched.tick()
    shard_id = rec.sent[0][0]
    assert claim_shard(engine, shard_id, "lost-worker", 60) is not None
    with write_session(engine) as s:
        s.execute(update(Shard).where(Shard.id == shard_id).values(lease_expires_at=None))
    report = sched.tick()
    assert report.reaped == [(shard_id, "pending")] and report.published == [shard_id]
    _finish_published(engine, rec)
    assert sched.tick().finalised == {job_id: "succeeded"}
    with read_session(engine) as s:
        assert s.get(Job, job_id).status is JobStatus.succeeded  # type: ignore[union-attr]
        assert s.get(Heartbeat, "scheduler") is not None


def test_publish_only_ticks_skip_the_upkeep_and_run_keeps_it_to_its_interval(
    engine: Engine,
) -> None:
    import threading

    job_id = _job(engine, 2)
    rec = Recorder(engine)
    sched = Scheduler(engine, rec, max_in_flight=1, owner="s1")
    first = sched.tick(upkeep=False)
    assert len(first.published) == 1
    with read_session(engine) as s:
        assert s.get(Heartbeat, "scheduler") is None  # no upkeep: no heartbeat yet
    _finish_published(engine, rec)
    assert len(sched.tick(upkeep=False).published) == 1  # publishing still every tick
    _finish_published(engine, rec)
    lazy = sched.tick(upkeep=False)
    assert lazy.finalised == {} and lazy.reaped == []
    with read_session(engine) as s:
        assert s.get(Job, job_id).finished_at is None  # type: ignore[union-attr]

    # run(): the first tick does the upkeep (heartbeat, finalise); later ones only publish
    ticks: list[bool] = []
    stop = threading.Event()
    real_tick = sched.tick

    def counting_tick(upkeep: bool = True) -> object:
        ticks.append(upkeep)
        if len(ticks) >= 5:
            stop.set()
        return real_tick(upkeep)

    sched.tick = counting_tick  # type: ignore[method-assign]
    sched.upkeep_interval = 3600.0
    sched.run(interval=0.01, stop=stop)
    assert ticks == [True, False, False, False, False]
    with read_session(engine) as s:
        assert s.get(Job, job_id).status is JobStatus.succeeded  # type: ignore[union-attr]
        assert s.get(Heartbeat, "scheduler") is not None


def test_a_job_the_scheduler_ends_gets_its_digest_and_sort_orders(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker that wrote the last shard died before finalising the job: the scheduler
    ends it and builds what the worker would have built (stats digest, gallery orders)."""
    from tests.helpers import DIGITS_DISAGREEMENT
    from xaiq.analysis import sortkeys
    from xaiq.db.models import StatsDigest
    from xaiq.scheduler.submit import submit
    from xaiq.worker import shard as shard_module

    job_id = submit(DIGITS_DISAGREEMENT, engine=engine, local=True).job_id
    monkeypatch.setattr(shard_module, "_finalise_quietly", lambda engine, job_id: None)
    with read_session(engine) as s:
        ids = s.scalars(select(Shard.id).where(Shard.job_id == job_id)).all()
    for shard_id in ids:
        assert shard_module.process_shard(engine, shard_id, from_pending=True).status == "done"
    with read_session(engine) as s:
        assert s.get(Job, job_id).finished_at is None  # type: ignore[union-attr]
    sched = Scheduler(engine, Recorder(engine))
    assert sched.tick().finalised == {job_id: "succeeded"}
    sched.wait_summaries(timeout=120)
    with read_session(engine) as s:
        job = s.get(Job, job_id)
        digest = s.get(StatsDigest, job_id)
        assert digest is not None and digest.finished_at == job.finished_at  # type: ignore[union-attr]
    with engine.connect() as conn:
        assert sortkeys.valid(conn, job_id)
