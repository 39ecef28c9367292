"""The embedded executor on SQLite: real compute on the digits, rows checked one by one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import update

from xaiq.db.jobs import rows_for
from xaiq.db.models import Shard, ShardStatus
from xaiq.db.session import artifact_root, get_engine, read_session, write_session
from xaiq.scheduler.submit import submit
from xaiq.worker.artifacts import load_array
from xaiq.worker.local import run_local

SPEC = {
    "kind": "attribution",
    "dataset": "digits",
    "model": "digits-cnn-weak",
    "methods": ["saliency", "grad_cam"],
    "limit": 10,
    "shard_size": 4,
    "batch_size": 3,
}


def _rows(job_id: int, table: str) -> list[dict]:
    with read_session() as session:
        return rows_for(session, table, job_id)


def _run(spec: dict) -> tuple[int, dict]:
    job = submit(spec, local=True)
    return job.job_id, run_local(job.job_id)


def test_an_attribution_job_writes_one_row_and_one_artifact_per_sample_and_method(home) -> None:  # noqa: ANN001
    job_id, progress = _run(SPEC)
    assert progress["status"] == "succeeded" and progress["shards"]["done"] == 3
    samples = _rows(job_id, "samples")
    assert [r["sample_index"] for r in samples] == list(range(10))
    assert all(r["key"] == f"digits/{r['sample_index']}" for r in samples)
    assert all(r["correct"] == (r["pred"] == r["label"]) for r in samples)
    rows = _rows(job_id, "attributions")
    assert [(r["sample_index"], r["method"]) for r in rows] == [
        (i, m) for i in range(10) for m in ("grad_cam", "saliency")
    ]
    for r in rows:
        m = load_array(r["artifact"], r["checksum"])
        assert m.shape == (28, 28) and m.dtype == np.float32
        assert r["max"] == pytest.approx(float(m.max())) and r["std"] == pytest.approx(
            float(m.std())
        )
    assert str(artifact_root()).startswith(str(home))


def test_rerunning_a_finished_shard_adds_no_duplicate_rows(home) -> None:  # noqa: ANN001
    job_id, _ = _run(SPEC)
    before = {t: _rows(job_id, t) for t in ("samples", "attributions")}
    with write_session(get_engine()) as s:  # as if a redelivered message ran shard 0 again
        s.execute(
            update(Shard)
            .where(Shard.job_id == job_id, Shard.index == 0)
            .values(status=ShardStatus.pending, finished_at=None)
        )
        from xaiq.db.models import Job

        s.execute(update(Job).where(Job.id == job_id).values(finished_at=None))
    assert run_local(job_id)["status"] == "succeeded"
    assert {t: _rows(job_id, t) for t in before} == before


def test_a_corrupt_sample_file_is_an_error_row_and_the_rest_of_its_shard_lands(
    home,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    from xaiq.xai.digits import digits_arrays

    images, labels = digits_arrays()
    for i in range(6):
        folder = tmp_path / "digits" / str(int(labels[i]))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((images[i] * 255).astype(np.uint8)).save(folder / f"{i}.png")
    bad = tmp_path / "digits" / str(int(labels[2])) / "2.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    spec = {**SPEC, "dataset": str(tmp_path / "digits"), "limit": None, "shard_size": 6}
    job_id, progress = _run(spec)
    assert progress["status"] == "partial"
    errors = _rows(job_id, "sample_errors")
    assert len(errors) == 1 and errors[0]["stage"] == "load"
    assert errors[0]["key"].endswith("2.png") and "2.png" in errors[0]["message"]
    bad_index = errors[0]["sample_index"]
    good = sorted(set(range(6)) - {bad_index})
    assert [r["sample_index"] for r in _rows(job_id, "samples")] == good
    assert sorted({r["sample_index"] for r in _rows(job_id, "attributions")}) == good


def test_a_disagreement_sweep_has_one_row_per_sample_pair_and_configuration(home) -> None:  # noqa: ANN001
    spec = {
        **SPEC,
        "kind": "disagreement",
        "methods": ["saliency", "grad_cam", "input_x_gradient"],
        "superpixels": ["grid"],
        "n_segments": [16, 49],
        "k_frac": [0.1, 0.25],
        "limit": 6,
    }
    job_id, progress = _run(spec)
    assert progress["status"] == "succeeded"
    rows = _rows(job_id, "disagreements")
    assert len(rows) == 6 * 3 * 2 * 2
    assert {(r["method_a"], r["method_b"]) for r in rows} == {
        ("saliency", "grad_cam"),
        ("saliency", "input_x_gradient"),
        ("grad_cam", "input_x_gradient"),
    }
    for r in rows:
        assert r["n"] == r["n_segments"] and r["k"] == max(1, int(r["k_frac"] * r["n"] + 1e-9))
        fd = r["feature_disagreement"]  # NULL where a map has no ranking (all-zero Grad-CAM)
        assert fd is None or 0.0 <= fd <= 1.0


def test_a_zero_map_stores_null_rank_metrics_not_total_disagreement(
    home,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dataclasses

    from xaiq.db.models import METRIC_COLUMNS
    from xaiq.xai.explainers.base import EXPLAINERS

    real = EXPLAINERS.get("grad_cam")

    def zero_for_even_samples(module, images, targets, *, sample_ids, **params):  # noqa: ANN001, ANN202
        maps = real.fn(module, images, targets, sample_ids=sample_ids, **params)
        even = [i for i, s in enumerate(sample_ids) if int(s) % 2 == 0]
        maps[even] = 0.0
        return maps

    fake = dataclasses.replace(real, fn=zero_for_even_samples)
    monkeypatch.setitem(EXPLAINERS._items, "grad_cam", fake)
    spec = {**SPEC, "kind": "disagreement", "superpixels": ["grid"], "n_segments": [16]}
    job_id, progress = _run({**spec, "limit": 4})
    assert progress["status"] == "succeeded"
    rows = _rows(job_id, "disagreements")
    assert len(rows) == 4
    ranking = [c for c in METRIC_COLUMNS if not c.startswith("euclidean")]
    for r in rows:
        if r["sample_index"] % 2 == 0:
            assert all(r[c] is None for c in METRIC_COLUMNS), r
        else:
            assert r["feature_disagreement"] is not None and r["euclidean"] is not None
            assert all(r[c] is not None for c in ranking)


def test_reusing_an_attribution_jobs_maps_gives_the_same_disagreement(home) -> None:  # noqa: ANN001
    sweep = {"superpixels": ["grid"], "n_segments": [16], "k_frac": [0.25]}
    source, _ = _run(SPEC)
    reused, p = _run(
        {
            "kind": "disagreement",
            "dataset": "digits",
            "model": "digits-cnn-weak",
            "from_job": source,
            "limit": 10,
            "shard_size": 5,
            **sweep,
        }
    )
    direct, _ = _run({**SPEC, "kind": "disagreement", **sweep})
    assert p["status"] == "succeeded"
    a, b = _rows(reused, "disagreements"), _rows(direct, "disagreements")
    assert len(a) == len(b) == 10
    for ra, rb in zip(a, b, strict=True):
        ra.pop("job_id"), rb.pop("job_id")
        assert ra == rb
    assert _rows(reused, "attributions") == []  # nothing recomputed


def test_the_shard_that_finishes_a_job_finalises_it_without_a_scheduler_tick(home) -> None:  # noqa: ANN001
    from xaiq.db.jobs import job_progress, pending_shard_ids
    from xaiq.worker.shard import process_shard

    engine = get_engine()
    job_id = submit(SPEC, local=True).job_id
    with read_session(engine) as session:
        ids = pending_shard_ids(session, job_id)
    assert len(ids) == 3
    for i, shard_id in enumerate(ids):
        with read_session(engine) as session:  # not finished while a shard is still pending
            assert job_progress(session, job_id)["finished_at"] is None, i
        assert process_shard(engine, shard_id, from_pending=True).status == "done"
    with read_session(engine) as session:
        p = job_progress(session, job_id)
    assert p["status"] == "succeeded" and p["finished_at"] is not None


def test_a_last_shard_failing_at_the_attempt_cap_finalises_its_job(home) -> None:  # noqa: ANN001
    from xaiq.db.jobs import claim_shard, job_progress, pending_shard_ids
    from xaiq.worker.shard import run_claim

    engine = get_engine()
    job_id = submit({**SPEC, "limit": 4, "max_attempts": 1}, local=True).job_id
    with read_session(engine) as session:
        (shard_id,) = pending_shard_ids(session, job_id)
    claim = claim_shard(engine, shard_id, "w", 60, from_pending=True)
    assert claim is not None

    def broken(*_: object, **__: object) -> dict:
        raise RuntimeError("model exploded")

    assert run_claim(engine, claim, compute=broken).status == "failed"
    with read_session(engine) as session:
        p = job_progress(session, job_id)
    assert p["status"] == "failed" and p["finished_at"] is not None
    assert "model exploded" in p["error"]
