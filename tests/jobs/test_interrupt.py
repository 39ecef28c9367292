"""Interrupting and resuming in-process jobs through the `xaiq` script, on SQLite and
PostgreSQL: Ctrl-C stops at the next batch and exits 130, a killed `submit` leaves a job that
any command reaps, `wait` does not hang on it, and `resume` finishes it with every row written
once and equal to an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.jobs.conftest import wait_for
from xaiq.db.jobs import job_progress, rows_for
from xaiq.db.session import dispose_engines, get_engine, read_session
from xaiq.scheduler.submit import submit
from xaiq.worker.local import run_local

# 12 batches of 4 digits in 2 shards: long enough (IG 400 steps) that a signal cannot race
# the end of the job on an idle machine, short to run
SPEC_ARGS = [
    "attribution",
    "-d",
    "digits",
    "-m",
    "digits-cnn-weak",
    "--methods",
    "saliency,integrated_gradients",
    "--limit",
    "48",
    "--shard-size",
    "24",
    "--batch-size",
    "4",
    "--param",
    "integrated_gradients.n_steps=400",
]
SPEC = {
    "kind": "attribution",
    "dataset": "digits",
    "model": "digits-cnn-weak",
    "methods": ["saliency", "integrated_gradients"],
    "limit": 48,
    "shard_size": 24,
    "batch_size": 4,
    "params": {"integrated_gradients": {"n_steps": 400}},
}
TABLES = ("samples", "attributions", "sample_errors")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a store: SQLite under XAIQ_HOME, or a fresh PostgreSQL database."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XAIQ_DB_URL", "XAIQ_BROKER_URL", "XAIQ_ARTIFACTS", "XAIQ_HOME")
    }
    env |= {
        "XAIQ_HOME": str(tmp_path / "home"),
        "XAIQ_PROGRESS_SECONDS": "0.2",
        "XAIQ_OWNER_STALE_SECONDS": "6",
        "XAIQ_TORCH_THREADS": "1",
    }
    if request.param == "postgresql":
        pg_url = request.getfixturevalue("pg_url")
        env |= {"XAIQ_DB_URL": pg_url, "XAIQ_ARTIFACTS": str(tmp_path / "artifacts")}
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield env
    finally:
        os.environ.clear()
        os.environ.update(saved)
        dispose_engines()


def xaiq(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "xaiq.cli.main", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def progress(job_id: int) -> dict:
    from xaiq.db.errors import NotFoundError

    with read_session(get_engine()) as session:
        try:
            return job_progress(session, job_id)
        except NotFoundError:  # not submitted yet
            return {"samples_finished": -1}


def comparable(job_id: int) -> dict[str, list[dict]]:
    """Every result row of a job without what names the job (its id, artifact paths)."""
    out = {}
    with read_session(get_engine()) as session:
        for table in TABLES:
            out[table] = [
                {k: v for k, v in r.items() if k not in ("job_id", "artifact", "attempt")}
                for r in rows_for(session, table, job_id)
            ]
    return out


def stop_midway(proc: subprocess.Popen, job_id: int, above: int, sig: int) -> None:
    """Send ``sig`` once the job has finished more than ``above`` samples."""
    wait_for(
        lambda: proc.poll() is None and progress(job_id)["samples_finished"] > above,
        240,
        f"job {job_id} past {above} samples",
    )
    assert proc.poll() is None, "the job ended before it could be interrupted"
    proc.send_signal(sig)


def test_ctrl_c_then_kill_then_resume_writes_every_row_once_as_an_uninterrupted_run(
    store: dict[str, str],
) -> None:
    get_engine()  # migrate the store before the subprocesses race to do it
    job_id = 1
    first = xaiq(store, "submit", *SPEC_ARGS)
    stop_midway(first, job_id, 0, signal.SIGINT)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    assert f"resume with `xaiq resume {job_id}`" in err.splitlines()[-1]
    p = progress(job_id)
    assert p["status"] == "interrupted" and p["finished_at"] is None
    kept = p["samples_done"]
    assert 0 < kept < 48 and kept % 4 == 0  # whole batches, committed
    assert p["shards"]["running"] == 0

    second = xaiq(store, "resume", str(job_id))
    stop_midway(second, job_id, kept, signal.SIGKILL)
    second.wait(timeout=60)
    assert progress(job_id)["status"] == "running"  # nobody knows yet that its owner died

    started = time.monotonic()
    waiting = xaiq(store, "wait", str(job_id))
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 1 and time.monotonic() - started < 60
    assert f"xaiq resume {job_id}" in err
    p = progress(job_id)
    assert p["status"] == "interrupted" and p["shards"]["running"] == 0

    third = xaiq(store, "resume", str(job_id))
    out, err = third.communicate(timeout=600)
    assert third.returncode == 0, err
    assert progress(job_id)["status"] == "succeeded"

    # computed afresh (not read back from the job above: same maps, so they would be reused)
    reference = submit({**SPEC, "recompute": True}, local=True).job_id
    assert run_local(reference)["status"] == "succeeded"
    got, want = comparable(job_id), comparable(reference)
    assert [r["sample_index"] for r in got["samples"]] == list(range(48))
    assert len(got["attributions"]) == 96
    assert got == want


def test_cancel_stops_a_running_in_process_job_at_its_next_batch(store: dict[str, str]) -> None:
    from xaiq.cli.main import main

    get_engine()
    # one shard of 24 slower batches: the cancel lands long before its end
    args = ["--limit", "96", "--shard-size", "96", "--param", "integrated_gradients.n_steps=200"]
    proc = xaiq(store, "submit", *SPEC_ARGS, *args)
    stop_midway(proc, 1, 0, 0)  # signal 0: only checks the process exists
    assert main(["cancel", "1"]) == 0
    out, err = proc.communicate(timeout=120)
    p = progress(1)
    assert p["status"] == "cancelled" and p["finished_at"] is not None, err
    assert 0 < p["samples_done"] < 96  # the batches before the cancel are kept
    assert p["shards"] == {**p["shards"], "cancelled": 1, "running": 0}


HOOKS = Path(__file__).resolve().parents[1] / "reliability" / "hooks"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_sigterm_right_after_the_job_row_is_committed_leaves_a_resumable_job(
    store: dict[str, str],
) -> None:
    get_engine()
    env = {**store, "PYTHONPATH": os.pathsep.join([str(HOOKS), str(ROOT)])}
    env["XAIQ_TEST_SIGNAL_AFTER_COMMIT"] = str(int(signal.SIGTERM))
    args = ["attribution", "-d", "digits", "-m", "digits-cnn", "--methods", "saliency"]
    first = xaiq(env, "submit", *args, "--limit", "8", "--shard-size", "4")
    out, err = first.communicate(timeout=300)
    assert first.returncode == 130, err  # not 143 (killed by the default handler)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1] == "job 1 interrupted: 0 of 8 samples kept; resume with `xaiq resume 1`"
    assert "Traceback" not in err
    p = progress(1)
    assert p["status"] == "interrupted" and p["owner"] is None, p  # not a pending orphan
    resumed = xaiq(store, "resume", "1")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    p = progress(1)
    assert p["status"] == "succeeded" and p["samples_done"] == 8, p


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_a_resume_that_takes_over_a_stopped_owner_exits_0_when_the_job_succeeds(
    store: dict[str, str],
) -> None:
    get_engine()
    # six shards of 8: the stopped owner, once continued, would claim shards of its own
    args = [*SPEC_ARGS[:-1], "integrated_gradients.n_steps=200"]
    args[args.index("--shard-size") + 1] = "8"
    first = xaiq(store, "submit", *args)
    stop_midway(first, 1, 0, signal.SIGSTOP)
    try:
        time.sleep(float(store["XAIQ_OWNER_STALE_SECONDS"]) + 1)  # the owner looks gone
        second = xaiq(store, "resume", "1")
        kept = progress(1)["samples_finished"]
        wait_for(lambda: progress(1)["samples_finished"] > kept, 240, "the resume to run")
    finally:
        first.send_signal(signal.SIGCONT)  # it wakes up in the middle of its batch
    # the first owner stops at its next batch (its lease is gone) and claims no other shard
    out, err = first.communicate(timeout=120)
    assert first.returncode == 1, err
    assert "taken over by process" in err.splitlines()[-1], err
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    assert "job 1 interrupted" not in err and "stopping" not in err
    p = progress(1)
    assert p["status"] == "succeeded" and p["samples_done"] == 48, p
    got = comparable(1)
    assert [r["sample_index"] for r in got["samples"]] == list(range(48))
    assert len(got["attributions"]) == 96 and got["sample_errors"] == []
