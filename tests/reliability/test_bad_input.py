"""Bad input: each gives a one-line error naming the file, key or value, and a job goes on
with its other samples; a bad spec, store or broker writes nothing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from xaiq.db.jobs import rows_for
from xaiq.db.session import get_engine, read_session
from xaiq.scheduler.errors import SpecError
from xaiq.scheduler.spec import validate_spec
from xaiq.scheduler.submit import submit
from xaiq.worker.local import run_local
from xaiq.xai.errors import DatasetError

from .checks import assert_every_sample_accounted
from .faults import STORE, one_line
from .images import BAD, GOOD, write_awkward_folder
from .services import free_port

ROOT = Path(__file__).resolve().parents[2]


def xaiq(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "xaiq.cli.main", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The CLI's error: exit code 2, one line on stderr, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


def _run(spec: dict) -> tuple[int, dict]:
    done = submit(spec, local=True)
    return done.job_id, run_local(done.job_id)


def _errors(job_id: int) -> dict[str, dict]:
    with read_session() as session:
        return {r["key"]: r for r in rows_for(session, "sample_errors", job_id)}


def test_awkward_image_files_each_get_a_one_line_error_and_the_rest_run(
    home: Path, tmp_path: Path
) -> None:
    folder = write_awkward_folder(tmp_path / "awkward")
    spec = {
        "kind": "disagreement",
        "dataset": f"folder:{folder}",
        "model": "digits-cnn",
        "methods": ["saliency", "grad_cam"],
        "superpixels": ["grid"],
        "n_segments": [16],
        "shard_size": 4,
        "batch_size": 4,
    }
    job_id, p = _run(spec)
    assert p["status"] == "partial", p
    assert p["n_samples"] == len(GOOD) + len(BAD)  # notes.txt is not a sample
    errors = _errors(job_id)
    assert sorted(errors) == sorted(BAD)
    for name, row in errors.items():
        assert row["stage"] == "load"
        assert "\n" not in row["message"] and str(folder / name) in row["message"], row
    assert "truncated" in errors["truncated.png"]["message"]
    assert "empty" in errors["zero_bytes.png"]["message"]
    assert "not a readable image" in errors["text.png"]["message"]
    assert "too large" in errors["huge.png"]["message"]
    with read_session() as session:
        samples = {r["key"] for r in rows_for(session, "samples", job_id)}
    assert samples == set(GOOD)
    counts = assert_every_sample_accounted(str(get_engine().url), job_id)
    assert counts == {"ok": len(GOOD), "errors": len(BAD), "failed_shard_samples": 0}


def test_empty_folder_and_folder_without_images_are_refused_at_submit(
    home: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "readme.md").write_text("# no images\n")
    (texts / "data.csv").write_text("a,b\n")
    for folder in (empty, texts):
        spec = {
            "kind": "attribution",
            "dataset": f"folder:{folder}",
            "model": "digits-cnn",
            "methods": ["saliency"],
        }
        with pytest.raises(SpecError, match=f"no image files .* in {folder}"):
            validate_spec(spec)
        with pytest.raises(DatasetError):
            from xaiq.xai.datasets import open_dataset

            open_dataset(str(folder))
    proc = xaiq(
        "submit",
        "attribution",
        "--dataset",
        f"folder:{texts}",
        "--model",
        "digits-cnn",
        "--methods",
        "saliency",
        env={"XAIQ_HOME": str(home)},
    )
    assert str(texts) in one_error_line(proc)
    assert not (home / "xaiq.sqlite").exists() or _job_count(home / "xaiq.sqlite") == 0


def _job_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])


class NanForBright(torch.nn.Module):
    """A 10-class 'model' whose logits are NaN for bright images (mean input > 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1).repeat(1, 4)[:, :10]
        bright = x.mean(dim=(1, 2, 3), keepdim=False) > 0
        return torch.where(bright[:, None], torch.full_like(logits, float("nan")), logits)


def test_a_model_with_nan_output_records_those_samples_and_keeps_the_others(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    monkeypatch.setenv("XAIQ_TRUST_TORCHSCRIPT", "1")
    model = torch.jit.script(NanForBright())
    path = tmp_path / "nan_model.pt"
    model.save(str(path))
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, value in (("dark1.png", 0), ("bright.png", 255), ("dark2.png", 10)):
        Image.new("RGB", (32, 32), (value,) * 3).save(folder / name)
    spec = {
        "kind": "attribution",
        "dataset": f"folder:{folder}",
        "model": f"torchscript:{path}",
        "methods": ["saliency"],
    }
    job_id, p = _run(spec)
    assert p["status"] == "partial", p
    errors = _errors(job_id)
    assert list(errors) == ["bright.png"]
    assert errors["bright.png"]["stage"] == "predict"
    assert "non-finite" in errors["bright.png"]["message"]
    with read_session() as session:
        attributions = rows_for(session, "attributions", job_id)
    assert sorted(r["sample_index"] for r in attributions) == [1, 2]  # dark1, dark2


def test_a_checkpoint_for_another_architecture_fails_the_job_naming_the_file(
    home: Path, tmp_path: Path
) -> None:
    from xaiq.xai.models import load_model

    digits = load_model("digits-cnn")
    path = tmp_path / "digits_as_resnet.pt"
    torch.save(digits.module.state_dict(), path)
    spec = {
        "kind": "attribution",
        "dataset": "digits",
        "model": f"resnet18:{path}",
        "methods": ["saliency"],
        "limit": 4,
        "max_attempts": 2,
    }
    job_id, p = _run(spec)
    assert p["status"] == "failed", p
    assert p["error"] is not None and "\n" not in p["error"]
    assert str(path) in p["error"] and "does not match the architecture" in p["error"]
    assert "failed after 2 attempts" in p["error"]  # capped, not retried forever


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"colour": "red"}, "'colour'"),
        ({"limit": "ten"}, "limit"),
        ({"shard_size": 0}, "shard_size"),
        ({"methods": "saliency"}, "methods"),
        ({"methods": ["saliency", "no_such_method"]}, "no_such_method"),
        ({"params": {"saliency": {"abs": "yes", "bogus": 1}}}, "params.saliency"),
        ({"seed": 1.5}, "seed"),
        ({"queue": "tpu"}, "tpu"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_key_and_writes_nothing(
    home: Path, tmp_path: Path, change: dict, named: str
) -> None:
    spec = {
        "kind": "attribution",
        "dataset": "digits",
        "model": "digits-cnn",
        "methods": ["saliency"],
        "limit": 4,
        **change,
    }
    with pytest.raises(SpecError) as info:
        submit(spec, local=True)
    assert named in str(info.value) and "\n" not in str(info.value)
    with read_session() as session:
        from xaiq.db.jobs import jobs_list

        assert jobs_list(session) == []


def test_a_bad_spec_file_gives_one_cli_error_line(home: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {"dataset": "digits", "model": "digits-cnn", "methods": ["saliency"], "n_stepz": 3}
        )
    )
    line = one_error_line(
        xaiq("submit", "attribution", "--spec", str(spec), env={"XAIQ_HOME": str(home)})
    )
    assert "'n_stepz'" in line
    assert not (home / "xaiq.sqlite").exists() or _job_count(home / "xaiq.sqlite") == 0


def test_an_unreachable_database_gives_one_line_without_the_password(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://analyst:Sup3rSecretPw@127.0.0.1:{port}/xaiq"
    submit_args = (
        "submit",
        "attribution",
        "--dataset",
        "digits",
        "--model",
        "digits-cnn",
        "--methods",
        "saliency",
    )
    for args in (("status", "1"), submit_args):
        proc = xaiq(*args, env={"XAIQ_DB_URL": url, "XAIQ_HOME": str(tmp_path)})
        line = one_line(proc, STORE)
        assert f"127.0.0.1:{port}" in line, line
        assert "Sup3rSecretPw" not in proc.stderr + proc.stdout


def test_a_broker_that_is_down_fails_submit_and_writes_no_job(home: Path) -> None:
    port = free_port()
    url = f"redis://:BrokerPw42@127.0.0.1:{port}/0"
    proc = xaiq(
        "submit",
        "attribution",
        "--dataset",
        "digits",
        "--model",
        "digits-cnn",
        "--methods",
        "saliency",
        "--limit",
        "4",
        env={"XAIQ_HOME": str(home), "XAIQ_BROKER_URL": url},
    )
    line = one_line(proc, STORE)
    assert "broker" in line and f"127.0.0.1:{port}" in line
    assert "BrokerPw42" not in proc.stderr + proc.stdout
    assert not (home / "xaiq.sqlite").exists() or _job_count(home / "xaiq.sqlite") == 0
