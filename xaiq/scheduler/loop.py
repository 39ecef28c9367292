"""The scheduler: the one component that publishes shards.

Each tick (every ``interval`` seconds, or at once when woken: :mod:`xaiq.broker.wake`) it
publishes pending shards while a queue has fewer than ``max_in_flight`` shards
queued or running (highest job priority first, round-robin across jobs of equal priority);
at most once a second (``upkeep_interval``) it also records a heartbeat, reaps expired leases
(back to pending, or failed past the attempt cap) and finalises jobs whose shards are all
finished; a job it ends gets its statistics digest and gallery sort orders on a background
thread (a process that exits finishes the one under way first). Publishing after the commit:
a shard is marked queued in one transaction, then its message is sent; a failed send puts it
back.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import socket
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select

from xaiq.broker.app import QUEUES as BROKER_QUEUES
from xaiq.db.jobs import IN_FLIGHT, beat, finalize_job, reap_expired
from xaiq.db.models import Job, JobStatus, Shard, ShardStatus, utcnow
from xaiq.db.session import read_session, write_session
from xaiq.db.transitions import shards_update
from xaiq.scheduler.submit import SCHEDULER_COMPONENT

Publisher = Callable[[int, str], None]  # (shard id, queue)
QUEUES = BROKER_QUEUES


def celery_publisher(broker_url: str | None = None) -> Publisher:
    """Publish ``xaiq.run_shard(shard_id)`` on ``queue`` through Celery (JSON)."""
    from xaiq.broker.app import TASK_RUN_SHARD, make_app

    app = make_app(broker_url)

    def publish(shard_id: int, queue: str) -> None:
        app.send_task(TASK_RUN_SHARD, args=[shard_id], queue=queue, routing_key=queue)

    return publish


@dataclass
class TickReport:
    published: list[int] = field(default_factory=list)
    reaped: list[tuple[int, str]] = field(default_factory=list)
    finalised: dict[int, str] = field(default_factory=dict)


class Scheduler:
    """Publishes shards of ``queues`` with at most ``max_in_flight`` per queue in flight."""

    def __init__(
        self,
        engine: Engine,
        publish: Publisher,
        *,
        max_in_flight: int | Mapping[str, int] = 4,
        queues: tuple[str, ...] = QUEUES,
        owner: str | None = None,
        upkeep_interval: float = 1.0,
    ) -> None:
        self.engine = engine
        self.upkeep_interval = upkeep_interval
        self.publish = publish
        self.queues = queues
        if isinstance(max_in_flight, int):
            max_in_flight = {q: max_in_flight for q in queues}
        self.max_in_flight = dict(max_in_flight)
        self.owner = owner or f"scheduler@{socket.gethostname()}:{os.getpid()}"
        self._last_served: dict[tuple[str, int], int] = {}  # (queue, priority) -> job id
        self._summaries: ThreadPoolExecutor | None = None  # made at the first job it ends
        self._summarising: list[Future[None]] = []

    def _choose(self, queue: str, slots: int) -> list[int]:
        """Up to ``slots`` pending shard ids: priority first, round-robin across jobs."""
        # the round-robin below takes at most ``slots`` shards of any one job, so only the
        # first ``slots`` pending shards of each job leave the database (a tick woken by
        # every finished shard read all 10,000 pending rows of a big backlog each time)
        first = func.row_number().over(partition_by=Shard.job_id, order_by=Shard.index).label("nth")
        pending = (
            select(Shard.id, Shard.job_id, Shard.index, Job.priority, first)
            .join(Job, Job.id == Shard.job_id)
            .where(Job.queue == queue, Job.cancel_requested.is_(False))
            .where(Job.finished_at.is_(None), Shard.status == ShardStatus.pending)
            .subquery()
        )
        with read_session(self.engine) as session:
            rows = session.execute(
                select(pending.c.id, pending.c.job_id, pending.c.priority)
                .where(pending.c.nth <= slots)
                .order_by(pending.c.priority.desc(), pending.c.job_id, pending.c.index)
            ).all()
        by_priority: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
        for shard_id, job_id, priority in rows:
            by_priority[priority][job_id].append(shard_id)
        chosen: list[int] = []
        for priority in sorted(by_priority, reverse=True):
            jobs = by_priority[priority]
            order = sorted(jobs)
            last = self._last_served.get((queue, priority))
            if last is not None:  # start after the job served last
                later = [j for j in order if j > last]
                order = later + [j for j in order if j <= last]
            while len(chosen) < slots and any(jobs[j] for j in order):
                for job_id in order:
                    if len(chosen) >= slots:
                        break
                    if jobs[job_id]:
                        chosen.append(jobs[job_id].pop(0))
                        self._last_served[(queue, priority)] = job_id
            if len(chosen) >= slots:
                break
        return chosen

    def _publish_queue(self, queue: str) -> list[int]:
        with read_session(self.engine) as session:
            in_flight = session.scalar(
                select(func.count())
                .select_from(Shard)
                .join(Job, Job.id == Shard.job_id)
                .where(Job.queue == queue, Shard.status.in_(IN_FLIGHT))
            )
        slots = self.max_in_flight.get(queue, 0) - int(in_flight or 0)
        if slots <= 0:
            return []
        chosen = self._choose(queue, slots)
        if not chosen:
            return []
        with write_session(self.engine) as session:
            marked = session.scalars(
                shards_update(ShardStatus.pending, ShardStatus.queued)
                .where(Shard.id.in_(chosen))
                .values(published_at=utcnow())
                .returning(Shard.id)
            ).all()
        published = []
        for shard_id in sorted(marked, key=chosen.index):
            try:
                self.publish(shard_id, queue)
                published.append(shard_id)
            except Exception:  # broker hiccup: back to pending, retried next tick
                with write_session(self.engine) as session:
                    session.execute(
                        shards_update(ShardStatus.queued, ShardStatus.pending).where(
                            Shard.id == shard_id
                        )
                    )
        return published

    def _finalise(self) -> dict[int, str]:
        done: dict[int, str] = {}
        with read_session(self.engine) as session:
            open_jobs = list(
                session.scalars(
                    select(Job.id).where(
                        Job.finished_at.is_(None),
                        Job.status.in_([JobStatus.pending, JobStatus.running]),
                    )
                )
            )
        for job_id in open_jobs:
            with write_session(self.engine) as session:
                status = finalize_job(session, job_id)
                if status not in (JobStatus.pending, JobStatus.running):
                    done[job_id] = status.value
        for job_id in done:
            self._summarise(job_id)
        return done

    def _summarise(self, job_id: int) -> None:
        """A job this scheduler ended (its last worker died before finalising it, or its
        last shard failed past the cap) gets its statistics digest and gallery sort orders,
        as a job its worker ends does (:func:`xaiq.analysis.digest.build_digest_quietly`).
        On one background thread: at millions of rows they take seconds, and publishing
        must not wait."""
        from xaiq.analysis.digest import build_digest_quietly

        if self._summaries is None:
            self._summaries = ThreadPoolExecutor(1, thread_name_prefix="xaiq-summaries")
        self._summarising = [f for f in self._summarising if not f.done()]
        self._summarising.append(self._summaries.submit(build_digest_quietly, self.engine, job_id))

    def wait_summaries(self, timeout: float | None = None) -> None:
        """Wait for the digests and sort orders under way (at shutdown, and in tests)."""
        wait(self._summarising, timeout=timeout)

    def _requeue_stale_queued(self) -> list[tuple[int, str]]:
        """Shards queued longer than ``XAIQ_QUEUED_TIMEOUT`` s (default 300) go back to pending
        and are published again: their message may be gone (a broker restarted without
        persistence, a publish whose commit answer was lost in a DB restart). A duplicate
        message is harmless: the claim refuses a shard that is not queued."""
        timeout = float(os.environ.get("XAIQ_QUEUED_TIMEOUT", "300"))
        cutoff = utcnow() - dt.timedelta(seconds=timeout)
        with write_session(self.engine) as session:
            ids = session.scalars(
                shards_update(ShardStatus.queued, ShardStatus.pending)
                .where(Shard.published_at < cutoff)
                .returning(Shard.id)
            ).all()
        return [(i, ShardStatus.pending.value) for i in ids]

    def tick(self, upkeep: bool = True) -> TickReport:
        """Publish; with ``upkeep`` also heartbeat, reap leases, requeue stale messages and
        finalise jobs (the slow-moving part: leases last minutes, and the worker that ends a
        job finalises it itself)."""
        report = TickReport()
        if upkeep:
            beat(self.engine, SCHEDULER_COMPONENT, self.owner)
            report.reaped = reap_expired(self.engine) + self._requeue_stale_queued()
        for queue in self.queues:
            report.published += self._publish_queue(queue)
        if upkeep:
            report.finalised = self._finalise()
        return report

    def run(
        self,
        interval: float = 1.0,
        stop: threading.Event | None = None,
        broker_url: str | None = None,
    ) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set, and at once when woken up
        through ``broker_url``'s Redis (a submit, a finished shard: :mod:`.wake`). The upkeep
        part runs at most every ``upkeep_interval`` seconds (idle on PostgreSQL, a
        publish-only tick took 3.4 ms against 14 ms for a full one)."""
        import logging
        import time

        from sqlalchemy.exc import SQLAlchemyError

        from xaiq.broker.wake import Waiter
        from xaiq.db.errors import StoreError
        from xaiq.db.failures import describe

        log = logging.getLogger("xaiq.scheduler")
        stop = stop or threading.Event()
        waiter = Waiter(broker_url, stop)
        last_upkeep = -math.inf
        failing: tuple[str, float] | None = None  # (message, when it was last logged)
        while not stop.is_set():
            try:
                now = time.monotonic()
                upkeep = now - last_upkeep >= self.upkeep_interval
                self.tick(upkeep=upkeep)
                if upkeep:
                    last_upkeep = now
            except (SQLAlchemyError, StoreError) as exc:
                # a restart, a dropped schema, a full disk: the state is in the database, so
                # the scheduler keeps trying; one line when the failure starts or changes, then
                # one a minute
                message = str(describe(exc, self.engine.url.render_as_string(False)))
                situation = message.split(": ", 1)[0]  # the same failure on another table
                if failing is None or failing[0] != situation or time.monotonic() - failing[1] > 60:
                    log.warning("%s (retrying)", message)
                    failing = (situation, time.monotonic())
                stop.wait(max(interval, 1.0))
                continue
            if failing is not None:
                log.warning("the store answers again")
                failing = None
            waiter.wait(interval)
