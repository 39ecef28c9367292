"""Torch threads sized to the cores a process is given, shared among the machine's compute
processes (in-process jobs and worker pool processes)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from xaiq.worker import cores
from xaiq.worker.cores import ComputeSlot, available_cores, live_processes, threads_for


@pytest.fixture(autouse=True)
def run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XAIQ_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("XAIQ_TORCH_THREADS", raising=False)
    return tmp_path / "run"


@pytest.fixture
def other_process(run_dir):
    """Another live process registered as a compute process (a sleeping child)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / f"{child.pid}.slot").write_text(cores._start_time(child.pid))
    yield child
    child.kill()
    child.wait()


def test_threads_are_the_cores_divided_among_processes_and_never_zero():
    assert threads_for(8, 1) == 8
    assert threads_for(8, 2) == 4
    assert threads_for(8, 3) == 2
    assert threads_for(2, 4) == 1
    assert threads_for(1, 0) == 1


def test_available_cores_follow_the_cpu_affinity_given_to_the_process():
    code = (
        "import os; os.sched_setaffinity(0, {0}); "
        "from xaiq.worker.cores import available_cores; print(available_cores())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    assert 1 <= available_cores() <= (os.cpu_count() or 1)


def test_a_lone_job_uses_every_core_and_two_share_them(other_process):
    with ComputeSlot() as slot:
        assert live_processes() == 2
        assert slot.threads() == threads_for(available_cores(), 2)
    other_process.kill()
    other_process.wait()
    with ComputeSlot() as slot:
        assert live_processes() == 1  # the dead process's file no longer counts
        assert slot.threads() == available_cores()
    assert live_processes() == 0  # our own file went with the slot


def test_a_worker_counts_at_least_its_concurrency_and_an_explicit_count_wins(monkeypatch):
    with ComputeSlot(at_least=2) as slot:
        assert slot.threads() == threads_for(available_cores(), 2)
        monkeypatch.setenv("XAIQ_TORCH_THREADS", "3")
        assert slot.threads() == 3


def test_a_recycled_pid_is_not_taken_for_a_live_compute_process(run_dir):
    run_dir.mkdir(parents=True)
    (run_dir / f"{os.getpid()}.slot").write_text("1")  # our pid, another start time
    assert live_processes() == 0
    assert not (run_dir / f"{os.getpid()}.slot").exists()


def test_an_in_process_job_shrinks_to_its_share_and_restores_the_thread_count(
    tmp_path, monkeypatch, other_process
):
    from xaiq.db.session import get_engine
    from xaiq.worker.local import run_spec

    engine = get_engine(f"sqlite:///{tmp_path / 's.db'}", migrate=True)
    monkeypatch.setenv("XAIQ_ARTIFACTS", str(tmp_path / "art"))
    spec = {
        "kind": "disagreement",
        "dataset": "digits",
        "model": "digits-cnn-weak",
        "methods": ["saliency", "grad_cam"],
        "superpixels": ["grid"],
        "n_segments": [16],
        "limit": 4,
        "shard_size": 2,
    }
    before = torch.get_num_threads()
    seen: list[int] = []
    run_spec(spec, engine=engine, progress=lambda _p: seen.append(torch.get_num_threads()))
    assert seen == [threads_for(available_cores(), 2)] * 2
    assert torch.get_num_threads() == before
