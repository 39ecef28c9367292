"""Signs of life for the one-image commands (`explain`, `compare`, `attack`), whose work is a
few long steps (load a model, run each explainer, the search): on a terminal a Rich bar over
the steps with a spinner and the elapsed time; off a terminal, a step that runs longer than
``XAIQ_PROGRESS_LINE_SECONDS`` (default 5) prints one line that often, so a log shows life
and a quick run prints nothing extra."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.markup import escape

from xaiq.cli.output import err_console
from xaiq.cli.progress import line_seconds


class Steps:
    """``with Steps("compare", total=4) as steps: steps.start("explaining IG"); ...``"""

    def __init__(self, label: str, total: int, *, terminal: bool | None = None) -> None:
        self.label, self.total = label, total
        self.terminal = err_console.is_terminal if terminal is None else terminal
        self.done = 0
        self._what = ""
        self._since = time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Steps:
        if self.terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total)
        else:
            self._thread = threading.Thread(target=self._lines, name="xaiq-steps", daemon=True)
            self._thread.start()
        return self

    def start(self, what: str) -> None:
        """Begin the next step (the previous one, if any, counts as done)."""
        with self._lock:
            if self._what:
                self.done += 1
            self._what, self._since = what, time.monotonic()
            if self._bar is not None:
                self._bar.update(
                    self._task, completed=self.done, description=f"{self.label}: {what}"
                )

    def _lines(self) -> None:
        every = line_seconds()
        while not self._stop.wait(every):
            with self._lock:
                if not self._what:
                    continue
                seconds = time.monotonic() - self._since
                step = min(self.done + 1, self.total)
                text = f"{self.label}: {self._what} (step {step}/{self.total}, {seconds:.0f} s)"
            err_console.print(escape(text), highlight=False, soft_wrap=True)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
        if self._thread is not None:
            self._thread.join(timeout=1)
