"""Workers and the scheduler refuse configurations that cannot work, at start, with one line
naming the option (exit 2), before touching the broker or the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from xaiq.cli.main import main

from .faults import USAGE, one_line, sqlite_procs


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("worker", "--device", "bogus"), "bogus"),
        (("worker", "--device", "cuda:0"), "cuda:0"),
        (("worker", "--device", "cuda:99"), "cuda:99"),
        (("worker", "--threads", "-1"), "--threads"),
        (("worker", "-c", "0"), "--concurrency"),
        (("worker", "--queues", "bogus"), "bogus"),
        (("scheduler", "--max-in-flight", "-5"), "--max-in-flight"),
        (("scheduler", "--interval", "-1"), "--interval"),
        (("scheduler", "--interval", "nan"), "--interval"),
        (("scheduler", "--queues", "bogus"), "bogus"),
    ],
)
def test_an_impossible_worker_or_scheduler_option_is_refused_at_start(
    args: tuple[str, ...],
    named: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    if args[-1].startswith("cuda") and torch.cuda.is_available() and args[-1] == "cuda:0":
        pytest.skip("this machine has CUDA")
    monkeypatch.delenv("XAIQ_BROKER_URL", raising=False)  # refused before the broker check
    code = main(list(args))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == USAGE and len(lines) == 1 and lines[0].startswith("error: "), err
    assert named in lines[0] and "XAIQ_BROKER_URL" not in lines[0], lines[0]


def test_the_worker_script_refuses_a_bogus_device_with_one_line(tmp_path: Path) -> None:
    procs = sqlite_procs(tmp_path)
    one_line(procs.run("worker", "--device", "bogus", "-Q", "cpu"), USAGE, "'bogus'")
