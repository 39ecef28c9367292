"""Showing a job's progress: a Rich bar on a terminal, otherwise one plain line every few
seconds (so a log shows life); and running an in-process job under Ctrl-C/SIGTERM handling.

Progress comes from the store (:func:`xaiq.db.jobs.job_progress`), where shards report the
samples of every finished batch, so the bar moves by batch, not by shard, whoever computes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import typer
from rich.markup import escape

from xaiq.cli.output import err_console, info


def line_seconds() -> float:
    """Seconds between plain progress lines (``XAIQ_PROGRESS_LINE_SECONDS``, default 5)."""
    return float(os.environ.get("XAIQ_PROGRESS_LINE_SECONDS", "5"))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_line(p: dict[str, Any]) -> str:
    """``job 3: 96/1797 samples (5%), 2 failed, 12.3 samples/s, ETA 2m18s [running]``"""
    total = max(int(p["n_samples"]), 0)
    done = int(p["samples_finished"])
    pct = f" ({100 * done / total:.0f}%)" if total else ""
    parts = [f"job {p['job']}: {done}/{total} samples{pct}"]
    if p.get("samples_failed"):
        parts.append(f"{p['samples_failed']} failed")
    if p.get("rate"):
        parts.append(f"{p['rate']:.1f} samples/s")
    if p.get("finished_at") is None and p.get("eta_seconds") is not None:
        parts.append(f"ETA {_duration(p['eta_seconds'])}")
    return ", ".join(parts) + f" [{p['status']}]"


class ProgressView:
    """Shows progress dicts of one job until closed; silent when ``quiet``."""

    def __init__(self, quiet: bool, *, terminal: bool | None = None) -> None:
        self.quiet = quiet
        self.terminal = err_console.is_terminal if terminal is None else terminal
        self._bar: Any = None
        self._task: Any = None
        self._last_line = -float("inf")
        self._last: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> ProgressView:
        if not self.quiet and self.terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            # markup=False: "[running]" is text, not a Rich tag to swallow
            self._bar = Progress(
                TextColumn("job {task.fields[job]} [{task.fields[status]}]", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}", markup=False),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err_console,
                transient=False,
            )
            self._bar.__enter__()
        return self

    def update(self, p: dict[str, Any], *, force: bool = False) -> None:
        """Show ``p`` (a plain line only every few seconds, unless ``force`` or final)."""
        with self._lock:
            self._last = p
            if self.quiet:
                return
            if self._bar is not None:
                rate = f"{p['rate']:.1f}/s" if p.get("rate") else ""
                if self._task is None:
                    self._task = self._bar.add_task(
                        "job", total=p["n_samples"], job=p["job"], status=p["status"], rate=rate
                    )
                self._bar.update(
                    self._task, completed=p["samples_finished"], status=p["status"], rate=rate
                )
                return
            now = time.monotonic()
            if force or now - self._last_line >= line_seconds() or p.get("finished_at"):
                self._last_line = now
                err_console.print(escape(progress_line(p)), highlight=False, soft_wrap=True)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def poll_progress(
    job_id: int, view: ProgressView, done: threading.Event, interval: float = 0.5
) -> threading.Thread:
    """A thread that reads the job's progress from the store every ``interval`` s into
    ``view`` until ``done`` is set."""
    from xaiq.db.jobs import job_progress
    from xaiq.db.session import read_session

    def run() -> None:
        while not done.wait(interval):
            try:
                with read_session() as session:
                    view.update(job_progress(session, job_id))
            except Exception:  # a store hiccup: the next poll retries
                continue

    thread = threading.Thread(target=run, name="xaiq-progress", daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, on_first: Callable[[], None]) -> Iterator[None]:
    """The first SIGINT or SIGTERM sets ``stop`` (the job stops after its current batch);
    a second SIGINT raises :class:`KeyboardInterrupt` at once. Only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not stop.is_set():
            stop.set()
            on_first()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def interrupted_exit(p: dict[str, Any]) -> typer.Exit:
    """Print the one line of an interrupted job (what was kept, how to resume); exit 130."""
    info(
        f"job {p['job']} interrupted: {p['samples_finished']} of {p['n_samples']} samples kept;"
        f" resume with `xaiq resume {p['job']}`"
    )
    return typer.Exit(130)


def run_local_with_progress(job_id: int, device: str | None, quiet: bool) -> dict[str, Any]:
    """Run an in-process job here with a progress display. Ctrl-C or SIGTERM stops it after
    the current batch: the job is left ``interrupted`` and this raises ``typer.Exit(130)``
    after one line saying how to resume."""
    from xaiq.db.jobs import job_progress
    from xaiq.db.session import get_engine, read_session
    from xaiq.worker.checkpoint import STOP
    from xaiq.worker.local import run_local

    STOP.clear()
    engine = get_engine()
    with read_session(engine) as session:
        first = job_progress(session, job_id)
    done = threading.Event()
    with ProgressView(quiet) as view:
        view.update(first)
        poller = poll_progress(job_id, view, done)

        def say_stopping() -> None:
            info("stopping after the current batch (Ctrl-C again to stop at once)")

        try:
            with stop_on_signals(STOP, say_stopping):
                result = run_local(job_id, engine=engine, device=device, stop=STOP)
        except KeyboardInterrupt:
            result = None
        finally:
            done.set()
            poller.join(timeout=5)
        if result is None:
            with read_session(engine) as session:
                result = job_progress(session, job_id)
        view.update(result, force=True)
    if result["status"] == "interrupted":
        raise interrupted_exit(result)
    return result
