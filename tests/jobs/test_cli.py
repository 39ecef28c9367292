"""The job commands through ``xaiq.cli.main.main``: exit codes, one-line errors, JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from xaiq.cli.main import main
from xaiq.db.models import Job
from xaiq.db.session import read_session

SUBMIT = [
    "submit",
    "attribution",
    "-d",
    "digits",
    "-m",
    "digits-cnn-weak",
    "--methods",
    "saliency",
    "--limit",
    "5",
    "--shard-size",
    "2",
]


def _jobs() -> int:
    with read_session() as s:
        return s.scalar(select(func.count()).select_from(Job)) or 0


def test_submit_runs_in_process_without_a_broker_and_status_reports_it(
    home,
    capsys: pytest.CaptureFixture,  # noqa: ANN001
) -> None:
    assert main([*SUBMIT, "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["status"] == "succeeded" and done["samples_done"] == 5
    assert done["shards"]["done"] == 3 and done["queue"] == "local"
    assert main(["status", str(done["job"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples_finished"] == 5
    assert main(["list", "--json"]) == 0
    assert [j["job"] for j in json.loads(capsys.readouterr().out)] == [done["job"]]
    assert main(["wait", str(done["job"]), "--json"]) == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--methods", "salency"], "unknown method 'salency'"),
        (["--param", "saliency.abs=maybe"], "parameter 'abs' must be true/false"),
        (["--param", "saliency"], "--param expects KEY=VALUE"),
        (["--limit", "0"], "limit must be >= 1, got 0"),
    ],
)
def test_a_bad_submission_is_one_line_and_writes_nothing(
    home,
    capsys: pytest.CaptureFixture,
    args: list[str],
    needle: str,  # noqa: ANN001
) -> None:
    assert main([*SUBMIT, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert _jobs() == 0


def test_an_unreachable_broker_fails_the_submission_before_anything_is_written(
    home,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    monkeypatch.setenv("XAIQ_BROKER_URL", "redis://:hunter2@127.0.0.1:1/0")
    assert main(SUBMIT) == 3  # store or broker unreachable (STYLE: exit 3)
    err = capsys.readouterr().err
    assert "cannot reach the broker" in err and "hunter2" not in err
    assert _jobs() == 0


def test_a_broker_without_a_live_scheduler_is_reported(
    home,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    from .conftest import private_redis_url

    monkeypatch.setenv("XAIQ_BROKER_URL", private_redis_url())
    assert main([*SUBMIT, "--json"]) == 0
    captured = capsys.readouterr()
    assert "no live scheduler" in captured.err
    assert json.loads(captured.out)["status"] == "pending"
    assert _jobs() == 1


def test_workers_and_the_scheduler_refuse_to_start_without_a_broker(
    home,
    capsys: pytest.CaptureFixture,  # noqa: ANN001
) -> None:
    for command in (["worker"], ["scheduler"]):
        assert main(command) == 2
        assert "XAIQ_BROKER_URL is not set" in capsys.readouterr().err


def test_retry_reruns_failed_shards_and_cancel_of_a_finished_job_changes_nothing(
    home,
    capsys: pytest.CaptureFixture,  # noqa: ANN001
) -> None:
    from sqlalchemy import update

    from xaiq.db.models import Job, JobStatus, Shard, ShardStatus
    from xaiq.db.session import write_session

    assert main([*SUBMIT, "--json"]) == 0
    job_id = json.loads(capsys.readouterr().out)["job"]
    with write_session() as s:  # as if shard 1 had failed: the job would have ended partial
        s.execute(
            update(Shard)
            .where(Shard.job_id == job_id, Shard.index == 1)
            .values(status=ShardStatus.failed, error="boom")
        )
        s.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.partial))
    assert main(["retry", str(job_id), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "succeeded"
    # a finished job is not cancelled: exit 1 (the job ended, not as asked), shards unchanged
    assert main(["cancel", str(job_id), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["shards"]["done"] == 3
    assert "already finished (succeeded)" in captured.err


def test_the_job_commands_do_not_import_torch_at_module_level() -> None:
    code = "import sys, xaiq.cli.jobs; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
