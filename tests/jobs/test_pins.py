"""A job pins what it runs on (sample keys and content fingerprints): `xaiq resume` refuses a
dataset that changed under an unfinished job (exit 2, one line naming what changed) instead of
storing one image twice and never processing another, and a shard records a changed sample
as failed instead of storing rows of other content."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xaiq.db.jobs import rows_for
from xaiq.db.pins import read_pins
from xaiq.db.session import get_engine, read_session
from xaiq.scheduler.submit import submit
from xaiq.worker.local import run_local


def _digit(i: int) -> np.ndarray:
    from xaiq.xai.digits import digits_arrays

    images, _ = digits_arrays()
    return (images[i] * 255).astype(np.uint8)


def _folder(root: Path, n: int) -> Path:
    root.mkdir()
    for i in range(n):
        Image.fromarray(_digit(i)).save(root / f"img-{i:02d}.png")
    return root


def _spec(folder: Path) -> dict:
    return {
        "kind": "attribution",
        "dataset": f"folder:{folder}",
        "model": "digits-cnn",
        "methods": ["saliency"],
        "shard_size": 4,
        "batch_size": 2,
    }


def _interrupted_after_one_shard(folder: Path) -> int:
    """A job stopped (as by Ctrl-C) after its first shard: ``interrupted``, rows kept."""
    job = submit(_spec(folder), local=True).job_id
    stop = threading.Event()
    p = run_local(job, stop=stop, progress=lambda _p: stop.set())
    assert p["status"] == "interrupted" and p["samples_done"] == 4, p
    return job


def _xaiq(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xaiq.cli.main", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _keys(job: int) -> list[tuple[int, str]]:
    with read_session(get_engine()) as session:
        return [(r["sample_index"], r["key"]) for r in rows_for(session, "samples", job)]


def test_the_job_pins_every_sample_key_and_content_at_submit(home: Path, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "d", 6)
    job = submit(_spec(folder), local=True).job_id
    pins = read_pins(get_engine(), job)
    assert [pins[i][0] for i in range(6)] == [f"img-{i:02d}.png" for i in range(6)]
    import hashlib

    assert pins[2][1] == hashlib.sha256((folder / "img-02.png").read_bytes()).hexdigest()
    assert read_pins(get_engine(), job, 4, 6).keys() == {4, 5}


def test_resume_refuses_a_folder_that_gained_an_image_and_runs_once_it_is_restored(
    home: Path, tmp_path: Path
) -> None:
    folder = _folder(tmp_path / "d", 12)
    job = _interrupted_after_one_shard(folder)
    before = _keys(job)
    # sorts first: every later sample would move one index up
    Image.fromarray(_digit(40)).save(folder / "img-00a.png")
    done = _xaiq("resume", str(job))
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"error: job {job}'s dataset folder:{folder} changed")
    assert "1 added, 0 removed, 0 modified (first added: 'img-00a.png')" in lines[0]
    assert "submit a new job" in lines[0]
    assert _keys(job) == before  # nothing was run or written
    with read_session(get_engine()) as session:
        from xaiq.db.jobs import job_progress

        assert job_progress(session, job)["status"] == "interrupted"

    (folder / "img-00a.png").unlink()  # restored: the job resumes and each sample lands once
    done = _xaiq("resume", str(job))
    assert done.returncode == 0, done.stderr
    assert _keys(job) == [(i, f"img-{i:02d}.png") for i in range(12)]


def test_resume_and_retry_name_a_removed_and_a_modified_sample(home: Path, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "d", 12)
    job = _interrupted_after_one_shard(folder)
    Image.fromarray(_digit(50)).save(folder / "img-07.png")  # other content, same name
    done = _xaiq("resume", str(job))
    assert done.returncode == 2
    assert "0 added, 0 removed, 1 modified (first modified: 'img-07.png')" in done.stderr
    (folder / "img-11.png").unlink()
    done = _xaiq("retry", str(job))  # retry resumes an interrupted job: the same check
    assert done.returncode == 2
    assert "0 added, 1 removed, 1 modified (first removed: 'img-11.png')" in done.stderr


@pytest.mark.parametrize("change", ["modified", "replaced", "removed"])
def test_a_shard_records_a_sample_that_changed_as_failed_not_as_rows(
    home: Path, tmp_path: Path, change: str
) -> None:
    folder = _folder(tmp_path / "d", 6)
    job = submit(_spec(folder), local=True).job_id
    if change == "modified":
        Image.fromarray(_digit(50)).save(folder / "img-03.png")
        why = "'img-03.png' changed since the job was planned (its content differs)"
    elif change == "replaced":  # a new name at a pinned index, the pinned name gone
        (folder / "img-03.png").rename(folder / "img-03b.png")
        why = "sample 3 is 'img-03b.png' now; the job was planned on 'img-03.png'"
    else:
        (folder / "img-05.png").unlink()
        why = (
            "sample 5 ('img-05.png') is gone since the job was planned (the dataset has 5 samples)"
        )
    p = run_local(job)
    assert p["status"] == "partial" and p["samples_failed"] == 1, p
    with read_session(get_engine()) as session:
        errors = rows_for(session, "sample_errors", job)
        samples = rows_for(session, "samples", job)
    assert [(e["stage"], e["message"]) for e in errors] == [("load", why)]
    bad = errors[0]["sample_index"]
    assert bad not in {r["sample_index"] for r in samples}
    assert len(samples) == 5 and all(
        r["key"] == f"img-{r['sample_index']:02d}.png" for r in samples
    )


def test_a_disagreement_refuses_maps_of_a_job_whose_samples_changed(
    home: Path, tmp_path: Path
) -> None:
    from xaiq.scheduler.errors import SpecError

    folder = _folder(tmp_path / "d", 4)
    spec = {**_spec(folder), "methods": ["saliency", "input_x_gradient"]}
    source = submit(spec, local=True).job_id
    assert run_local(source)["status"] == "succeeded"
    reuse = {
        "kind": "disagreement",
        "dataset": f"folder:{folder}",
        "model": "digits-cnn",
        "from_job": source,
        "superpixels": ["grid"],
        "n_segments": [4],
    }
    Image.fromarray(_digit(60)).save(folder / "img-01.png")
    with pytest.raises(SpecError, match=r"sample 1 \('img-01.png'\) has other content now"):
        submit(reuse, local=True)
    Image.fromarray(_digit(1)).save(folder / "img-01.png")  # the same pixels, the same bytes
    assert run_local(submit(reuse, local=True).job_id)["status"] == "succeeded"
