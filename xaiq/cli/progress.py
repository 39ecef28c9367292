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
from xaiq.db.stages import stage_text


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


class Throughput:
    """Recent throughput and the ETA it gives: an exponentially weighted mean (``alpha``) of
    the rates between successive increases of the finished-sample count, so the estimate
    follows the last batches rather than the whole run (and ignores what a resumed run
    found already done: counting starts at the first count seen)."""

    def __init__(self, alpha: float = 0.3) -> None:
        self.alpha = alpha
        self.rate: float | None = None
        self._last: tuple[int, float] | None = None

    def update(self, done: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._last is None:
            self._last = (done, now)
            return
        before, then = self._last
        if done > before and now > then:
            inst = (done - before) / (now - then)
            self.rate = (
                inst if self.rate is None else self.alpha * inst + (1 - self.alpha) * self.rate
            )
            self._last = (done, now)

    def eta(self, total: int, done: int, now: float | None = None) -> float | None:
        """Seconds left: what remains at the recent rate, minus the time since the last
        increase; None before a rate is known or once the estimate has run out (stalled)."""
        if self.rate is None or self.rate <= 0 or self._last is None:
            return None
        now = time.monotonic() if now is None else now
        left = max(total - done, 0) / self.rate - (now - self._last[1])
        return left if left >= 0 else None


def progress_line(p: dict[str, Any]) -> str:
    """``job 3: 96/1797 samples (5%), 2 failed, 12.3 samples/s, ETA 2m18s [running]``, with
    the current stage and each stage's count when known."""
    total = max(int(p["n_samples"]), 0)
    done = int(p["samples_finished"])
    pct = f" ({100 * done / total:.0f}%)" if total else ""
    parts = [f"job {p['job']}: {done}/{total} samples{pct}"]
    if stage := stage_text(p):
        parts.append(stage)
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
        self.throughput = Throughput()
        # in-process jobs: the stage counts (xaiq.worker.stages) and the samples kept
        # from an earlier run, which every stage has finished
        self.stages: Callable[[], dict[str, Any]] | None = None
        self.kept = 0

    def __enter__(self) -> ProgressView:
        if not self.quiet and self.terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            # markup=False: "[running]" is text, not a Rich tag to swallow
            self._bar = Progress(
                TextColumn("job {task.fields[job]} [{task.fields[status]}]", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}", markup=False),
                TimeElapsedColumn(),
                TextColumn("{task.fields[eta]}", markup=False),
                TextColumn("{task.fields[stage]}", markup=False),
                console=err_console,
                transient=False,
            )
            self._bar.__enter__()
        return self

    def update(self, p: dict[str, Any], *, force: bool = False) -> None:
        """Show ``p`` (a plain line only every few seconds, unless ``force`` or final)."""
        with self._lock:
            p = self._recent(p)
            self._last = p
            if self.quiet:
                return
            if self._bar is not None:
                rate = f"{p['rate']:.1f}/s" if p.get("rate") else ""
                eta = "" if p.get("eta_seconds") is None else f"ETA {_duration(p['eta_seconds'])}"
                fields = {"status": p["status"], "rate": rate, "eta": eta, "stage": stage_text(p)}
                if self._task is None:
                    self._task = self._bar.add_task(
                        "job", total=p["n_samples"], job=p["job"], **fields
                    )
                self._bar.update(self._task, completed=p["samples_finished"], **fields)
                return
            now = time.monotonic()
            if force or now - self._last_line >= line_seconds() or p.get("finished_at"):
                self._last_line = now
                err_console.print(escape(progress_line(p)), highlight=False, soft_wrap=True)

    def _recent(self, p: dict[str, Any]) -> dict[str, Any]:
        """``p`` with rate and ETA from recent throughput (:class:`Throughput`) instead of
        the store's whole-run average, and the in-process stage counts when there are any."""
        done = int(p["samples_finished"])
        self.throughput.update(done)
        p = dict(p)
        if self.throughput.rate is not None:
            p["rate"] = self.throughput.rate
            p["eta_seconds"] = self.throughput.eta(int(p["n_samples"]), done)
        elif p.get("finished_at") is None:
            p["rate"], p["eta_seconds"] = None, None  # nothing measured in this run yet
        if self.stages is not None:
            p["stages"] = {**self.stages(), "kept": self.kept}
        return p

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


def _say_stopping() -> None:
    info("stopping after the current batch (Ctrl-C again to stop at once)")


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """The process's :data:`~xaiq.worker.checkpoint.STOP`, cleared, then set by the first
    SIGINT or SIGTERM while inside (:func:`stop_on_signals`). ``submit`` enters it before
    the job row is committed, so a signal at any moment leaves a job that ``xaiq resume``
    continues (never a ``pending`` job and exit 143)."""
    from xaiq.worker.checkpoint import STOP

    STOP.clear()
    with stop_on_signals(STOP, _say_stopping):
        yield STOP


def run_local_with_progress(job_id: int, device: str | None, quiet: bool) -> dict[str, Any]:
    """Run an in-process job here with a progress display. Ctrl-C or SIGTERM stops it after
    the current batch: the job is left ``interrupted`` and this raises ``typer.Exit(130)``
    after one line saying how to resume."""
    with stop_requests():
        return run_local_here(job_id, device, quiet)


def run_local_here(job_id: int, device: str | None, quiet: bool) -> dict[str, Any]:
    """:func:`run_local_with_progress` inside the caller's :func:`stop_requests`. A job that
    another process took over (this one was stopped past the stale period) ends this run
    with one line naming that process, exit 1."""
    from xaiq.db.jobs import job_progress
    from xaiq.db.lifecycle import this_owner
    from xaiq.db.session import get_engine, read_session
    from xaiq.worker import stages
    from xaiq.worker.checkpoint import STOP
    from xaiq.worker.local import run_local

    engine = get_engine()
    with read_session(engine) as session:
        first = job_progress(session, job_id)
    done = threading.Event()
    stages.reset(job_id)
    with ProgressView(quiet) as view:
        # a resumed job counts from what is kept: every stage has finished those samples
        view.kept = int(first["samples_finished"])
        view.stages = lambda: stages.snapshot(job_id)
        view.update(first)
        poller = poll_progress(job_id, view, done)
        try:
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
    owner = result.get("owner")
    if result.get("finished_at") is None and owner and owner != this_owner():
        info(
            f"job {job_id}: taken over by process {escape(owner)} while this one was stopped;"
            f" `xaiq wait {job_id}` follows it"
        )
        raise typer.Exit(1)
    if result["status"] == "interrupted":
        raise interrupted_exit(result)
    return result
