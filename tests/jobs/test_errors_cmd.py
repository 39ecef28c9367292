"""Failures are visible: `xaiq errors`, `status` (count and first failures), `export --what
errors`, and the reason of a `partial` job, on a folder dataset with one corrupt image."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xaiq.cli.main import main
from xaiq.scheduler.submit import submit
from xaiq.worker.local import run_local


@pytest.fixture
def partial_job(home: Path, tmp_path: Path) -> int:
    from xaiq.xai.digits import digits_arrays

    images, labels = digits_arrays()
    for i in range(6):
        folder = tmp_path / "digits" / str(int(labels[i]))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((images[i] * 255).astype(np.uint8)).save(folder / f"{i}.png")
    bad = tmp_path / "digits" / str(int(labels[2])) / "2.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    spec = {
        "kind": "attribution",
        "dataset": str(tmp_path / "digits"),
        "model": "digits-cnn-weak",
        "methods": ["saliency"],
        "shard_size": 3,
        "batch_size": 2,
    }
    job_id = submit(spec, local=True).job_id
    assert run_local(job_id)["status"] == "partial"
    return job_id


def _json(capsys: pytest.CaptureFixture, *argv: str) -> object:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_errors_lists_the_failed_sample_with_its_stage_and_message(
    partial_job: int, capsys: pytest.CaptureFixture
) -> None:
    rows = _json(capsys, "errors", str(partial_job), "--format", "json")
    assert isinstance(rows, list) and len(rows) == 1
    (row,) = rows
    assert row["stage"] == "load" and row["key"].endswith("2.png") and "2.png" in row["message"]


def test_status_shows_the_failed_count_the_first_failures_and_why_it_is_partial(
    partial_job: int, capsys: pytest.CaptureFixture
) -> None:
    p = _json(capsys, "status", str(partial_job), "--json")
    assert isinstance(p, dict)
    assert p["status"] == "partial" and p["samples_failed"] == 1
    assert [e["stage"] for e in p["first_errors"]] == ["load"]
    assert p["error"] == f"1 samples failed (see `xaiq errors {partial_job}`)"
    assert main(["status", str(partial_job)]) == 0
    table = capsys.readouterr().out
    assert "first failures" in table and "2.png" in table


def test_export_what_errors_writes_the_failed_samples(
    partial_job: int, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "errors.csv"
    assert main(["export", str(partial_job), "--what", "errors", "--out", str(out)]) == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["stage"], r["key"].endswith("2.png")) for r in rows] == [("load", True)]


def test_a_failed_shard_is_listed_with_its_sample_range(
    home: Path, capsys: pytest.CaptureFixture
) -> None:
    from xaiq.db.jobs import claim_shard, pending_shard_ids
    from xaiq.db.session import get_engine, read_session
    from xaiq.worker.shard import run_claim

    engine = get_engine()
    spec = {"kind": "attribution", "dataset": "digits", "model": "digits-cnn-weak"}
    job_id = submit({**spec, "methods": ["saliency"], "limit": 4, "max_attempts": 1}, local=True)
    with read_session(engine) as session:
        (shard_id,) = pending_shard_ids(session, job_id.job_id)
    claim = claim_shard(engine, shard_id, "w", 60, from_pending=True)
    assert claim is not None

    def broken(*_: object, **__: object) -> dict:
        raise RuntimeError("model exploded")

    assert run_claim(engine, claim, compute=broken).status == "failed"
    rows = _json(capsys, "errors", str(job_id.job_id), "--format", "json")
    assert rows == [
        {
            "sample_index": 0,
            "key": "samples 0..3 (whole shard)",
            "stage": "shard",
            "message": "failed after 1 attempts: RuntimeError: model exploded",
        }
    ]
