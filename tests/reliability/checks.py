"""Invariants checked after every fault: each sample of a job has exactly one row per method
(attribution), per method pair and configuration (disagreement), or a recorded error."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from sqlalchemy import select

from xaiq.db.jobs import job_progress, rows_for
from xaiq.db.models import Job, Shard
from xaiq.db.session import get_engine, read_session
from xaiq.scheduler.spec import method_pairs
from xaiq.worker.artifacts import load_array

from .services import wait_for


def progress(db_url: str, job_id: int) -> dict[str, Any]:
    with read_session(get_engine(db_url)) as session:
        return job_progress(session, job_id)


def wait_finished(db_url: str, job_id: int, timeout: float = 240.0) -> dict[str, Any]:
    try:
        wait_for(lambda: progress(db_url, job_id)["finished_at"] is not None, timeout, "the job")
    except AssertionError:
        states = [(s.index, s.status.value, s.attempts) for s in shards(db_url, job_id)]
        raise AssertionError(f"job {job_id} unfinished after {timeout:g} s: {states}") from None
    return progress(db_url, job_id)


def shards(db_url: str, job_id: int) -> list[Shard]:
    with read_session(get_engine(db_url)) as session:
        return list(session.scalars(select(Shard).where(Shard.job_id == job_id)))


def assert_every_sample_accounted(db_url: str, job_id: int, artifacts=None) -> dict[str, int]:
    """Fail unless each sample has its rows exactly once or an error row (never both missing).

    Returns counts: ``ok`` samples, ``errors`` samples."""
    with read_session(get_engine(db_url)) as session:
        job = session.get(Job, job_id)
        assert job is not None
        spec, n = dict(job.spec), job.n_samples
        tables = {
            t: rows_for(session, t, job_id)
            for t in ("samples", "attributions", "disagreements", "attack_results", "sample_errors")
        }
    errors = Counter(r["sample_index"] for r in tables["sample_errors"])
    samples = Counter(r["sample_index"] for r in tables["samples"])
    assert max(errors.values(), default=1) == 1 and max(samples.values(), default=1) == 1
    failed_shards = [s for s in shards(db_url, job_id) if s.status.value == "failed"]
    in_failed = {i for s in failed_shards for i in range(s.start, s.stop)}
    methods = spec.get("methods") or []
    expected: Counter = Counter()
    for i in range(n):
        if i in in_failed:
            assert i not in samples, f"sample {i} of a failed shard has rows"
            continue
        assert i in samples or i in errors, f"sample {i} has neither rows nor an error"
        if i in errors:
            continue
        if spec["kind"] in ("attribution", "disagreement") and spec.get("from_job") is None:
            for m in methods:
                expected[("attributions", i, m)] += 1
        if spec["kind"] == "disagreement":
            for a, b in method_pairs(methods):
                for sp in spec["superpixels"]:
                    for ns in spec["n_segments"]:
                        for kf in spec["k_frac"]:
                            expected[("disagreements", i, a, b, sp, ns, kf)] += 1
    got: Counter = Counter()
    for r in tables["attributions"]:
        if r["sample_index"] not in errors:
            got[("attributions", r["sample_index"], r["method"])] += 1
    for r in tables["disagreements"]:
        if r["sample_index"] not in errors:
            got[
                (
                    "disagreements",
                    r["sample_index"],
                    r["method_a"],
                    r["method_b"],
                    r["superpixels"],
                    r["n_segments"],
                    r["k_frac"],
                )
            ] += 1
    assert got == expected, f"missing {expected - got}, extra {got - expected}"
    if artifacts is not None:
        for r in tables["attributions"]:
            # the shard's chunk; a reused map points at the job that stored it first
            owner = r"\d+" if r.get("reused") else str(job_id)
            form = rf"job-{owner}/{r['method']}/chunk-\d+\.npys#\d+:\d+"
            assert re.fullmatch(form, r["artifact"]), r["artifact"]
            load_array(r["artifact"], r["checksum"], root=artifacts)  # exists, checksum matches
    return {"ok": len(samples), "errors": len(errors), "failed_shard_samples": len(in_failed)}
