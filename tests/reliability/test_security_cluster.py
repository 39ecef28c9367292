"""Real processes with passwords in both URLs (private Redis with ``requirepass``, PostgreSQL
URL with a password): a pickled message is refused, not executed; no log line and no command
output ever shows either password."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from xaiq.db.session import get_engine
from xaiq.scheduler.submit import submit

from .checks import assert_every_sample_accounted, wait_finished
from .services import PrivatePostgres, PrivateRedis, Procs, wait_for
from .test_security import CreatesAFile

pytestmark = [pytest.mark.services, pytest.mark.slow]

DB_PW = "DbPassw0rdXyz"
BROKER_PW = "BrokerPassw0rdQrs"


@pytest.fixture
def secret_procs(tmp_path: Path, pg_db: str, private_pg: PrivatePostgres) -> Iterator[Procs]:
    redis = PrivateRedis(tmp_path / "redis", password=BROKER_PW)
    redis.start()
    # trust auth ignores the password, but every component still carries it in its URL
    db_url = make_url(pg_db).set(password=DB_PW).render_as_string(hide_password=False)
    procs = Procs(tmp_path, db_url, redis.url())
    try:
        yield procs
    finally:
        procs.stop_all()
        redis.stop()


def test_pickled_message_is_refused_and_passwords_never_printed(
    secret_procs: Procs, tmp_path: Path
) -> None:
    from celery import Celery

    procs = secret_procs
    procs.scheduler()
    procs.worker("w1")
    wait_for(lambda: "ready." in procs.log("w1"), 90, "the worker", 0.5)

    marker = tmp_path / "pwned-by-pickle"
    evil = Celery("evil", broker=procs.broker_url)
    evil.conf.update(task_serializer="pickle", accept_content=["pickle"])
    evil.send_task(
        "xaiq.run_shard",
        args=[CreatesAFile(marker)],
        queue="cpu",
        routing_key="cpu",
        serializer="pickle",
    )
    wait_for(lambda: "untrusted content" in procs.log("w1"), 30, "the refusal in the log")
    assert not marker.exists()
    assert procs.procs["w1"].poll() is None

    engine = get_engine(procs.db_url)
    spec = {
        "kind": "attribution",
        "dataset": "digits",
        "model": "digits-cnn",
        "methods": ["saliency"],
        "limit": 8,
        "shard_size": 4,
    }
    job = submit(spec, engine=engine, local=False, broker=procs.broker_url).job_id
    assert wait_finished(procs.db_url, job, timeout=120)["status"] == "succeeded"
    assert_every_sample_accounted(procs.db_url, job, procs.artifacts)
    assert not marker.exists()

    outputs = [
        procs.run(*args)
        for args in (("status", str(job)), ("list",), ("workers",), ("status", "999"))
    ]
    upgrade = procs.run("db", "upgrade", "--url", procs.db_url)
    assert upgrade.returncode == 0 and "***" in upgrade.stderr, upgrade.stderr
    time.sleep(1.0)
    text = procs.all_logs() + "".join(o.stdout + o.stderr for o in [*outputs, upgrade])
    # the URLs were printed (so the check below is not vacuous), each with its password masked
    assert f":**@{procs.broker_url.split('@', 1)[1]}" in procs.log("w1")
    assert "postgres:***@" in upgrade.stderr
    for secret in (DB_PW, BROKER_PW):
        assert secret not in text, f"a password was printed: ...{secret}..."
    assert outputs[0].returncode == 0 and "succeeded" in outputs[0].stdout
    assert outputs[3].returncode == 2 and "no job with id 999" in outputs[3].stderr
