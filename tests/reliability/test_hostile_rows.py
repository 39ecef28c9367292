"""Non-UTF-8 file names are stored escaped and their samples kept; rows the store cannot hold
(an integer past 64 bits) cost only their sample: it is recorded as a failed sample with its
error, every other sample of the shard lands exactly once, and the job ends ``partial``
(in-process and on the worker path alike)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from xaiq.db.jobs import claim_shard, rows_for
from xaiq.db.session import dispose_engines, get_engine, read_session
from xaiq.scheduler.submit import submit
from xaiq.worker.shard import run_claim
from xaiq.xai.datasets import open_dataset

from .checks import progress
from .faults import sqlite_procs
from .images import digit_image


def test_non_utf8_names_are_stored_escaped_and_their_samples_kept(tmp_path: Path) -> None:
    # real bytes on disk: a Latin-1 class folder b"caf\xe9" and a Latin-1 file in another
    root = os.fsencode(tmp_path / "d")
    for folder, names in ((b"caf\xe9", [b"a.png", b"b.png"]), (b"tea", [b"t\xe9.png"])):
        os.makedirs(os.path.join(root, folder))
        for i, name in enumerate(names):
            Image.fromarray(digit_image(i)).save(os.path.join(root, folder, name), format="PNG")
    procs = sqlite_procs(tmp_path)
    proc = procs.run(
        "submit", "attribution", "--dataset", f"folder:{tmp_path / 'd'}", "--model",
        "digits-cnn", "--methods", "saliency", "--json",
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    p = progress(procs.db_url, 1)
    assert p["status"] == "succeeded" and (p["samples_done"], p["samples_failed"]) == (3, 0), p
    with read_session(get_engine(procs.db_url)) as session:
        rows = rows_for(session, "samples", 1)
    keys = [r["key"] for r in rows]
    assert keys == ["caf\\xe9/a.png", "caf\\xe9/b.png", "tea/t\\xe9.png"]
    assert [r["label"] for r in rows] == [0, 0, 1]
    dataset = open_dataset(f"folder:{tmp_path / 'd'}")
    for key in keys:  # each key leads back to the file's bytes on disk
        assert os.path.isfile(os.fsencode(dataset.path(key)))
    assert os.fsencode(dataset.path(keys[2])) == os.path.join(root, b"tea", b"t\xe9.png")
    assert dataset.class_names == ("caf\\xe9", "tea")
    dispose_engines()


def _overflowing_compute(claim, **_):  # noqa: ANN001, ANN202 - run_claim's compute hook
    """The rows a shard computes, with one value (sample 2's n) past 64 bits."""
    tables: dict[str, list[dict]] = {"samples": [], "disagreements": [], "sample_errors": []}
    for i in range(claim.start, claim.stop):
        tables["samples"].append(
            {"job_id": claim.job_id, "sample_index": i, "key": f"s{i}", "label": 1, "pred": 1,
             "target": 1, "prob_pred": 0.9, "prob_target": 0.9, "correct": True, "probs": []}
        )  # fmt: skip
        tables["disagreements"].append(
            {"job_id": claim.job_id, "sample_index": i, "method_a": "saliency",
             "method_b": "grad_cam", "superpixels": "grid", "n_segments": 16, "k_frac": 0.1,
             "n": 2**70 if i == 2 else 16, "k": 1}
        )  # fmt: skip
    return tables


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_value_past_64_bits_fails_its_sample_not_the_shard_on_the_worker_path(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    if store == "postgresql":
        url = request.getfixturevalue("pg_db")
    engine = get_engine(url)
    spec = {
        "kind": "disagreement", "dataset": "digits", "model": "digits-cnn",
        "methods": ["saliency", "grad_cam"], "superpixels": ["grid"], "n_segments": [16],
        "limit": 5, "shard_size": 5,
    }  # fmt: skip
    job = submit(spec, engine=engine, local=True).job_id
    with read_session(engine) as session:
        from xaiq.db.jobs import pending_shard_ids

        (shard_id,) = pending_shard_ids(session, job)
    claim = claim_shard(engine, shard_id, "test-owner", 60, from_pending=True)
    assert claim is not None
    outcome = run_claim(engine, claim, compute=_overflowing_compute)
    assert (outcome.status, outcome.rows) == ("done", 10), outcome  # counted before the write
    p = progress(url, job)
    assert p["status"] == "partial" and p["shards"]["done"] == 1, p
    with read_session(engine) as session:
        errors = rows_for(session, "sample_errors", job)
        samples = [r["sample_index"] for r in rows_for(session, "samples", job)]
        pairs = [r["sample_index"] for r in rows_for(session, "disagreements", job)]
    assert samples == pairs == [0, 1, 3, 4]
    assert [(e["sample_index"], e["stage"]) for e in errors] == [(2, "store")]
    assert "\n" not in errors[0]["message"] and errors[0]["key"] == "s2"
    dispose_engines()


def test_a_sample_failing_after_its_prediction_counts_as_failed_only(home: Path) -> None:
    spec = {
        "kind": "attribution", "dataset": "digits", "model": "digits-cnn",
        "methods": ["saliency"], "limit": 4, "shard_size": 4,
    }  # fmt: skip
    engine = get_engine()
    job = submit(spec, engine=engine, local=True).job_id
    claim = claim_shard(engine, 1, "test-owner", 60, from_pending=True)
    assert claim is not None

    def compute(claim, **_):  # noqa: ANN001, ANN202 - sample 1 predicted, then its map failed
        tables = _overflowing_compute(claim)
        del tables["disagreements"]
        tables["sample_errors"] = [
            {"job_id": job, "sample_index": 1, "key": "s1", "stage": "explain",
             "message": "saliency: boom", "attempt": 1}
        ]  # fmt: skip
        return tables

    assert run_claim(engine, claim, compute=compute).status == "done"
    p = progress(str(engine.url), job)
    assert (p["samples_done"], p["samples_failed"], p["status"]) == (3, 1, "partial"), p
