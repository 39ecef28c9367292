"""Several machines with nothing shared but the services: the scheduler and two workers, each
on its own test host (network namespace + private /tmp, see tests/netns.py), PostgreSQL,
Redis and the S3 server the only shared parts. The job's rows equal the in-process run's,
and `xaiq report` on a fourth host draws from every map in the bucket."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from tests.netns import NetHost, netns_unavailable, python_env, relay
from xaiq.db.jobs import job_progress, live_workers, rows_for
from xaiq.db.models import Shard
from xaiq.db.session import get_engine, read_session
from xaiq.db.store import ArtifactStore
from xaiq.scheduler.submit import submit
from xaiq.worker.local import run_local

from .conftest import create_pg_database, drop_pg_database, private_redis_url, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow]

SPEC = {
    "kind": "disagreement",
    "dataset": "digits",
    "model": "digits-cnn",
    "methods": ["saliency", "grad_cam", "input_x_gradient"],
    "superpixels": ["grid"],
    "n_segments": [16],
    "limit": 16,
    "shard_size": 4,
}
CLI = [sys.executable, "-m", "xaiq.cli.main"]
READ_EVERY_MAP = """
import json, os, sys
from xaiq import results
res = results.open()
job = int(sys.argv[1])
att = res.attributions(job)
n = sum(res.map(job, int(r.sample_index), r.method).size > 0 for r in att.itertuples())
html = open("/tmp/r.html").read()
local = [os.path.join(d, f) for d, _, fs in os.walk("/tmp/xaiq-home") for f in fs]
print(json.dumps({"maps": int(n), "rows": len(att), "figures": html.count("data:image/png"),
                  "missing": html.count("is missing"), "local_files": local}))
"""
SKIP = {"id", "job_id", "artifact"}


def _rows(engine, job: int, table: str) -> list[dict]:  # noqa: ANN001
    with read_session(engine) as session:
        out = [{k: v for k, v in r.items() if k not in SKIP} for r in rows_for(session, table, job)]
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True, default=str))


@pytest.fixture
def services(s3_server, tmp_path_factory):  # noqa: ANN001, ANN201
    why = netns_unavailable()
    if why:
        if os.environ.get("XAIQ_REQUIRE_SERVICES") == "1":
            pytest.fail(f"no test hosts on this machine: {why}")
        pytest.skip(f"no test hosts on this machine: {why}")
    db_url = create_pg_database()
    try:
        from xaiq.db.session import upgrade

        upgrade(get_engine(db_url, migrate=False))
        yield db_url, private_redis_url(), s3_server, tmp_path_factory.mktemp("hosts")
    finally:
        drop_pg_database(db_url)


def test_scheduler_and_two_workers_on_separate_hosts_match_the_in_process_run(
    services,
    home,
    monkeypatch,  # noqa: ANN001
) -> None:
    db_url, broker_url, s3, logs = services
    bucket = s3.bucket()
    subnet = 16 + os.getpid() % 200
    hosts = [NetHost(subnet + i) for i in range(4)]  # scheduler, w1, w2, reporter
    procs = []
    try:
        s3_port = int(s3.endpoint.rsplit(":", 1)[1])
        pg_port = make_url(db_url).port or 5432
        redis_port = int(broker_url.rsplit(":", 1)[1].split("/")[0])
        procs.append(
            relay([h.gateway for h in hosts], [pg_port, redis_port, s3_port], logs / "relay.log")
        )

        def env(h: NetHost) -> dict[str, str]:
            return python_env(
                {
                    **s3.env(),
                    "AWS_ENDPOINT_URL": f"http://{h.gateway}:{s3_port}",
                    "XAIQ_DB_URL": make_url(db_url).set(host=h.gateway).render_as_string(False),
                    "XAIQ_BROKER_URL": broker_url.replace("127.0.0.1", h.gateway),
                    "XAIQ_ARTIFACTS": f"s3://{bucket}/art",
                    "XAIQ_HEARTBEAT_SECONDS": "1",
                    "XAIQ_LEASE_SECONDS": "60",
                }
            )

        sched, w1, w2, reporter = hosts
        procs.append(
            sched.popen(CLI + ["scheduler", "--interval", "0.2"], env(sched), logs / "sched.log")
        )
        for name, h in (("w1", w1), ("w2", w2)):
            argv = CLI + ["worker", "-c", "1", "--threads", "1", "-n", f"{name}@{h.addr}"]
            procs.append(h.popen(argv, env(h), logs / f"{name}.log"))
        engine = get_engine(db_url)

        def both_workers_up() -> bool:
            with read_session(engine) as session:
                return len(live_workers(session, 10.0)) >= 2

        # each worker reached PostgreSQL through its own link (its heartbeat row)
        wait_for(both_workers_up, 180, f"two workers on the test hosts (logs in {logs})")
        job = submit(SPEC, engine=engine, local=False, broker=broker_url).job_id

        def finished() -> bool:
            with read_session(engine) as session:
                return job_progress(session, job)["finished_at"] is not None

        wait_for(finished, 600, f"job {job} on the test hosts (logs in {logs})")
        with read_session(engine) as session:
            assert job_progress(session, job)["status"] == "succeeded"
            owners = set(session.scalars(select(Shard.lease_owner).where(Shard.job_id == job)))
        assert owners and None not in owners  # every shard was leased by a worker process

        # the same spec in this process, SQLite and a local directory: the same rows
        local_job = submit(SPEC, local=True).job_id
        assert run_local(local_job)["status"] == "succeeded"
        local_engine = get_engine()
        for table in ("samples", "attributions", "disagreements"):
            assert _rows(engine, job, table) == _rows(local_engine, local_job, table), table

        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)
        keys = ArtifactStore(f"s3://{bucket}/art").keys()
        assert len(keys) == 4 * 3  # shards x methods, all in the bucket

        proc = reporter.run(
            ["sh", "-c", " ".join(CLI) + f' report {job} --out /tmp/r.html >&2 && '
             + f'{sys.executable} -c "$0" {job}', READ_EVERY_MAP],
            env(reporter),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        seen = json.loads(proc.stdout.strip().splitlines()[-1])
        assert seen["maps"] == seen["rows"] == 16 * 3
        assert seen["figures"] >= 2 and seen["missing"] == 0
        assert not [f for f in seen["local_files"] if "/artifacts/" in f]
    finally:
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    if proc is procs[0]:
                        proc.terminate()  # the relay: a plain child of this process
                    else:
                        os.killpg(proc.pid, signal.SIGTERM)  # a host's process group
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except Exception:
                proc.kill()
        time.sleep(0.2)
        for h in hosts:
            h.remove()
