"""The distributed path for real: PostgreSQL, Redis, `xaiq scheduler` and two `xaiq worker`
subprocesses (one thread each). One cluster per module; tests run in file order."""

from __future__ import annotations

import os
import re
import signal
import time

import numpy as np
import pytest
import torch
from sqlalchemy import select

from xaiq.db.jobs import job_progress, request_cancel, rows_for
from xaiq.db.models import Job, Shard, ShardStatus, WorkerRow
from xaiq.db.session import get_engine, read_session
from xaiq.scheduler.submit import submit
from xaiq.worker.artifacts import load_array

from .conftest import Cluster, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow]

METHODS = ["saliency", "grad_cam", "integrated_gradients"]
SWEEP_SPEC = {
    "kind": "disagreement",
    "dataset": "digits",
    "model": "digits-cnn-weak",
    "methods": METHODS,
    "params": {"integrated_gradients": {"n_steps": 8}},
    "superpixels": ["grid"],
    "n_segments": [16, 49],
    "k_frac": [0.1],
    "limit": 30,
    "shard_size": 6,
    "batch_size": 4,
    "seed": 7,
}


def _submit(cluster: Cluster, spec: dict) -> int:
    engine = get_engine(cluster.db_url)
    return submit(spec, engine=engine, local=False, broker=cluster.broker_url).job_id


def _progress(cluster: Cluster, job_id: int) -> dict:
    with read_session(get_engine(cluster.db_url)) as session:
        return job_progress(session, job_id)


def _wait_finished(cluster: Cluster, job_id: int, timeout: float = 180.0) -> dict:
    wait_for(
        lambda: _progress(cluster, job_id)["finished_at"] is not None, timeout, f"job {job_id}"
    )
    return _progress(cluster, job_id)


def _rows(cluster: Cluster, job_id: int, table: str) -> list[dict]:
    with read_session(get_engine(cluster.db_url)) as session:
        return rows_for(session, table, job_id)


def _shards(cluster: Cluster, job_id: int) -> list[Shard]:
    with read_session(get_engine(cluster.db_url)) as session:
        return list(session.scalars(select(Shard).where(Shard.job_id == job_id)))


def test_two_workers_run_a_sweep_and_every_row_lands_once(cluster: Cluster) -> None:
    job_id = _submit(cluster, SWEEP_SPEC)
    p = _wait_finished(cluster, job_id)
    assert p["status"] == "succeeded", p
    samples = _rows(cluster, job_id, "samples")
    assert [r["sample_index"] for r in samples] == list(range(30))
    assert all(r["target"] == r["label"] for r in samples)
    attributions = _rows(cluster, job_id, "attributions")
    assert sorted((r["sample_index"], r["method"]) for r in attributions) == sorted(
        (i, m) for i in range(30) for m in METHODS
    )
    for r in attributions:
        # one object per shard and method; the row names its byte range
        assert re.fullmatch(rf"job-{job_id}/{r['method']}/chunk-\d+\.npys#\d+:\d+", r["artifact"])
        arr = load_array(r["artifact"], r["checksum"], root=cluster.artifacts)
        assert arr.shape == (28, 28) and np.isclose(arr.mean(), r["mean"], atol=1e-6)
    disagreements = _rows(cluster, job_id, "disagreements")
    keys = {
        (r["sample_index"], r["method_a"], r["method_b"], r["n_segments"]) for r in disagreements
    }
    assert len(disagreements) == len(keys) == 30 * 3 * 2
    assert {r["n"] for r in disagreements} == {16, 49}
    assert all(r["k"] == max(1, int(0.1 * r["n"])) for r in disagreements)
    # NULL only for a pair with an all-zero (unranked) Grad-CAM map (the metric contract in
    # docs/architecture.md)
    assert all(
        r["feature_disagreement"] is not None or "grad_cam" in (r["method_a"], r["method_b"])
        for r in disagreements
    )
    assert _rows(cluster, job_id, "sample_errors") == []
    shards = _shards(cluster, job_id)
    assert all(s.status == ShardStatus.done and s.attempts == 1 for s in shards)
    owners = {s.lease_owner.split(":")[1] for s in shards if s.lease_owner}
    assert len(owners) == 2, "both worker processes should have run shards"


def test_same_spec_and_seed_give_identical_rows_locally_and_on_two_workers(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xaiq.worker.local import run_local

    spec = {**SWEEP_SPEC, "methods": ["saliency", "smoothgrad"], "limit": 12, "shard_size": 5}
    spec["params"] = {"smoothgrad": {"n_samples": 4}}
    # both compute every map: with reuse, whichever job stores a map first would serve it to
    # the other, and the rows would compare the store with itself
    spec["recompute"] = True
    distributed = _submit(cluster, spec)
    monkeypatch.setenv("XAIQ_ARTIFACTS", str(cluster.artifacts))
    engine = get_engine(cluster.db_url)
    local = submit(spec, engine=engine, local=True).job_id
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers run one thread each
    try:
        assert run_local(local, engine=engine)["status"] == "succeeded"
    finally:
        torch.set_num_threads(threads)
    assert _wait_finished(cluster, distributed)["status"] == "succeeded"
    for table in ("samples", "attributions", "disagreements"):
        a = _rows(cluster, local, table)
        b = _rows(cluster, distributed, table)
        assert len(a) == len(b) > 0
        for ra, rb in zip(a, b, strict=True):
            for row in (ra, rb):
                row.pop("job_id")
                if "artifact" in row:
                    row["artifact"] = row["artifact"].split("/", 1)[1]
            assert ra == rb, table


def test_high_priority_job_finishes_while_a_large_job_still_runs(cluster: Cluster) -> None:
    big = _submit(
        cluster,
        {
            "kind": "attribution",
            "dataset": "digits",
            "model": "digits-cnn-weak",
            "methods": ["integrated_gradients"],
            "params": {"integrated_gradients": {"n_steps": 100}},
            "limit": 320,
            "shard_size": 8,
        },
    )
    wait_for(lambda: _progress(cluster, big)["shards"]["done"] >= 2, 120, "the big job to start")
    small = _submit(
        cluster,
        {
            "kind": "attribution",
            "dataset": "digits",
            "model": "digits-cnn-weak",
            "methods": ["saliency"],
            "limit": 8,
            "shard_size": 8,
            "priority": 5,
        },
    )
    assert _wait_finished(cluster, small, timeout=60)["status"] == "succeeded"
    big_now = _progress(cluster, big)
    assert big_now["finished_at"] is None
    assert big_now["shards"]["pending"] > 0
    counts = request_cancel(get_engine(cluster.db_url), big)
    assert counts["pending"] == 0 and counts["queued"] == 0
    assert _wait_finished(cluster, big, timeout=60)["status"] == "cancelled"


def test_sigkill_of_a_worker_mid_shard_still_completes_with_each_row_once(
    cluster: Cluster,
) -> None:
    spec = {
        "kind": "attribution",
        "dataset": "digits",
        "model": "digits-cnn-weak",
        "methods": ["saliency", "integrated_gradients"],
        "params": {"integrated_gradients": {"n_steps": 1000}},  # ~1 s+ per shard
        "limit": 24,
        "shard_size": 6,
    }
    job_id = _submit(cluster, spec)
    engine = get_engine(cluster.db_url)

    def busy_worker() -> WorkerRow | None:
        # computing a shard of this job (an earlier job may still run): the claim has committed
        with read_session(engine) as session:
            rows = session.scalars(
                select(WorkerRow)
                .join(Shard, Shard.id == WorkerRow.current_shard_id)
                .where(Shard.job_id == job_id, Shard.status == ShardStatus.running)
            )
            return next(iter(rows), None)

    wait_for(lambda: busy_worker() is not None, 120, "a worker to start a shard")
    row = busy_worker()
    assert row is not None
    killed_shard = row.current_shard_id
    victim = next(p for p in cluster.procs if p.poll() is None and p.pid == os.getpgid(row.pid))
    time.sleep(0.2)  # mid-shard: claimed and computing
    cluster.kill(victim, signal.SIGKILL)
    p = _wait_finished(cluster, job_id, timeout=180)
    assert p["status"] == "succeeded", p
    attributions = _rows(cluster, job_id, "attributions")
    pairs = [(r["sample_index"], r["method"]) for r in attributions]
    assert sorted(pairs) == sorted((i, m) for i in range(24) for m in spec["methods"])
    assert len(_rows(cluster, job_id, "samples")) == 24
    with read_session(engine) as session:
        shard = session.get(Shard, killed_shard)
        assert shard is not None and shard.job_id == job_id
        assert shard.status == ShardStatus.done and shard.attempts >= 2
        job = session.get(Job, job_id)
        assert job is not None and job.error is None


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_xaiq_workers_lists_the_live_worker_processes(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import json

    from xaiq.cli.main import main

    monkeypatch.setenv("XAIQ_DB_URL", cluster.db_url)
    alive = [p.pid for p in cluster.procs if p.poll() is None and "worker" in p.args]
    wait_for(
        lambda: (
            main(["workers", "--json", "--max-age", "5"]) == 0
            and len([w for w in json.loads(capsys.readouterr().out) if _group(w["pid"]) in alive])
            == len(alive)
        ),
        30,
        "the live workers to be listed",
    )
    assert main(["workers", "--json", "--max-age", "5"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all(r["queues"] == "gpu,cpu" and r["device"] == "auto" for r in rows)
