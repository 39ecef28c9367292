"""Progress display: plain lines off a terminal (a log shows life), status text that is not
swallowed as markup, and the one-image commands' steps."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

import pytest
from rich.console import Console

from xaiq.cli import output, progress, steps


def _progress(done: int, status: str = "running", **extra: object) -> dict:
    base = {
        "job": 7,
        "n_samples": 100,
        "samples_finished": done,
        "samples_failed": 0,
        "rate": 12.5,
        "eta_seconds": 90.0,
        "status": status,
        "finished_at": None,
    }
    return {**base, **extra}


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    buf = io.StringIO()
    console = Console(file=buf, width=200, force_terminal=False)
    for module in (output, progress, steps):
        monkeypatch.setattr(module, "err_console", console)
    return buf


def test_off_a_terminal_progress_is_one_plain_line_every_few_seconds(
    captured: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XAIQ_PROGRESS_LINE_SECONDS", "0.2")
    with progress.ProgressView(quiet=False, terminal=False) as view:
        view.update(_progress(0))
        view.update(_progress(4))  # too soon after the first line: not printed
        time.sleep(0.25)
        view.update(_progress(8, samples_failed=1))
        view.update(_progress(100, "succeeded", finished_at="now"))  # final: always printed
    lines = captured.getvalue().splitlines()
    # nothing measured in this run yet: no rate and no ETA (the store's whole-run average
    # is not shown); then the rate of the recent increases, and the ETA it gives
    assert lines[0] == "job 7: 0/100 samples (0%) [running]"
    pattern = r"job 7: 8/100 samples \(8%\), 1 failed, [\d.]+ samples/s, ETA \d+s \[running]"
    assert re.fullmatch(pattern, lines[1]), lines[1]
    pattern = r"job 7: 100/100 samples \(100%\), [\d.]+ samples/s \[succeeded]"
    assert re.fullmatch(pattern, lines[2]), lines[2]
    assert len(lines) == 3


def test_the_bar_shows_the_status_in_brackets_instead_of_swallowing_it_as_markup() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=120, force_terminal=True, color_system=None)
    view = progress.ProgressView(quiet=False, terminal=True)
    original = progress.err_console
    progress.err_console = console
    try:
        with view:
            view.update(_progress(40))
    finally:
        progress.err_console = original
    assert "job 7 [running]" in buf.getvalue()


def test_a_long_step_prints_a_line_off_a_terminal_and_a_quick_one_nothing(
    captured: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XAIQ_PROGRESS_LINE_SECONDS", "0.1")
    with steps.Steps("compare", total=2, terminal=False) as s:
        s.start("loading [red]model[/red]")
        s.start("explaining with saliency")
        time.sleep(0.35)
    lines = captured.getvalue().splitlines()
    assert lines and all(
        line.startswith("compare: explaining with saliency (step 2/2, ") for line in lines
    )
    captured.truncate(0)
    with steps.Steps("compare", total=1, terminal=False) as s:
        s.start("quick")
    assert captured.getvalue() == ""


def test_xaiq_explain_shows_life_in_a_log(tmp_path) -> None:  # noqa: ANN001
    env = {**os.environ, "XAIQ_PROGRESS_LINE_SECONDS": "0.05", "XAIQ_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "xaiq.cli.main", "explain", "digits:3", "-m", "digits-cnn-weak"]
        + ["--methods", "integrated_gradients", "--param", "integrated_gradients.n_steps=400"]
        + ["--out", str(tmp_path / "maps")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "explain: " in proc.stderr and "(step " in proc.stderr


def test_eta_follows_the_recent_throughput_and_counts_down_between_increases() -> None:
    t = progress.Throughput(alpha=0.5)
    t.update(10, now=0.0)  # a resumed job: 10 samples kept, the count starts there
    assert t.rate is None and t.eta(100, 10, now=0.0) is None
    t.update(20, now=10.0)  # 1 sample/s
    assert t.rate == pytest.approx(1.0)
    t.update(40, now=15.0)  # 4 samples/s recently: the mean moves halfway
    assert t.rate == pytest.approx(2.5)
    assert t.eta(100, 40, now=15.0) == pytest.approx(24.0)
    assert t.eta(100, 40, now=19.0) == pytest.approx(20.0)  # counts down without a new batch
    assert t.eta(100, 40, now=60.0) is None  # past its own estimate: unknown, not 0


def test_stage_counts_start_from_what_a_resumed_run_kept(
    captured: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xaiq.worker import stages

    monkeypatch.setenv("XAIQ_PROGRESS_LINE_SECONDS", "0")
    stages.reset(7)
    stages.begin(7, "explain")
    stages.finish(7, "explain", 16)
    stages.begin(7, "compare")
    with progress.ProgressView(quiet=False, terminal=False) as view:
        view.kept, view.stages = 40, lambda: stages.snapshot(7)
        view.update(_progress(40))
    stages.reset(7)
    line = captured.getvalue().splitlines()[0]
    want = "job 7: 40/100 samples (40%), stage compare (explain 56/100, compare 40/100) [running]"
    assert line == want
