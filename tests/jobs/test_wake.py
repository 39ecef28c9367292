"""Scheduler wake-ups on a real Redis: a submit is published long before the next tick."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from tests.jobs.conftest import private_redis_url, wait_for
from xaiq.broker.wake import WAKE_KEY, Waiter, notify
from xaiq.db.jobs import create_job
from xaiq.db.session import get_engine
from xaiq.scheduler.loop import Scheduler


@pytest.fixture
def redis_url() -> Iterator[str]:
    import redis

    url = private_redis_url()
    yield url
    redis.Redis.from_url(url).delete(WAKE_KEY)


def test_a_notification_ends_the_wait_and_a_burst_counts_once(redis_url: str) -> None:
    waiter = Waiter(redis_url, threading.Event())
    assert waiter.wait(0.05) is False  # nothing pending
    for _ in range(10):
        assert notify(redis_url) is True
    started = time.monotonic()
    assert waiter.wait(20.0) is True
    assert time.monotonic() - started < 5.0  # woken, not timed out
    assert waiter.wait(0.05) is False  # the burst was one wake-up


def test_without_redis_notify_is_a_no_op_and_wait_sleeps() -> None:
    stop = threading.Event()
    assert notify("amqp://guest@127.0.0.1:1//") is False
    assert notify("redis://127.0.0.1:1/0") is False  # unreachable: no error either
    started = time.monotonic()
    assert Waiter("redis://127.0.0.1:1/0", stop).wait(0.2) is False
    assert time.monotonic() - started >= 0.19
    stop.set()
    assert Waiter(None, stop).wait(30.0) is False  # stopped: returns at once


def test_scheduler_publishes_a_new_job_on_notify_not_at_its_long_interval(
    redis_url: str, home: object
) -> None:
    engine: Engine = get_engine()
    sent: list[int] = []
    sched = Scheduler(engine, lambda shard_id, queue: sent.append(shard_id), max_in_flight=2)
    stop = threading.Event()
    thread = threading.Thread(target=sched.run, args=(30.0, stop, redis_url), daemon=True)
    thread.start()
    try:
        time.sleep(0.5)  # the first tick has run (nothing to publish) and the wait began
        spec = {"kind": "attribution", "dataset": "d", "model": "m", "priority": 0}
        create_job(engine, kind="attribution", spec=spec, ranges=[(0, 1), (1, 2)], queue="cpu")
        assert not sent
        notify(redis_url)
        wait_for(lambda: len(sent) == 2, 10.0, "the woken scheduler to publish")  # << 30 s
    finally:
        stop.set()
        notify(redis_url)  # end the current wait
        thread.join(timeout=10)
    assert not thread.is_alive()
