"""Between batches of a shard: report progress, notice a cancel or a stop request.

``compute_shard`` calls a :class:`Checkpoint` after every batch but the last. It raises
:class:`ShardInterrupted` when this process was asked to stop (:data:`STOP`: Ctrl-C or
SIGTERM) or, at most every ``XAIQ_PROGRESS_SECONDS`` (default 1 s) when it also writes the
shard's progress (samples done, the current stage, each stage's samples), when the job was
cancelled or the shard's lease was taken over (its rows would be refused: the shard stops
instead of computing them). The shard function then writes the batches done so far and puts
the shard back (:func:`xaiq.db.lifecycle.suspend_shard`; nothing is written when the lease
is lost). A stage that begins inside a batch writes the progress too (same rate limit).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any

from sqlalchemy import Engine

from xaiq.db.jobs import Claim
from xaiq.db.lifecycle import shard_progress
from xaiq.worker.stages import ShardStages

# set by a signal handler (the CLI's for in-process jobs, the pool process's for workers)
STOP = threading.Event()


class ShardInterrupted(Exception):
    """A shard stopped between batches; ``tables`` holds the rows of the batches done."""

    def __init__(self, cancelled: bool) -> None:
        super().__init__("cancelled" if cancelled else "interrupted")
        self.cancelled = cancelled
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.samples_done = 0


def progress_seconds() -> float:
    return float(os.environ.get("XAIQ_PROGRESS_SECONDS", "1"))


class Checkpoint:
    """``checkpoint(samples_done)`` after a batch; ``skip`` are samples already written."""

    def __init__(
        self,
        engine: Engine | None,
        claim: Claim,
        skip: set[int] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.engine, self.claim = engine, claim
        self.skip = skip or set()
        self.stop = stop if stop is not None else STOP
        self.every = progress_seconds()
        self._last = time.monotonic()
        # the shard's stage counts (set by its computation), written with the progress
        self.stages: ShardStages | None = None
        self.last_done = 0  # the samples done last reported

    def _write(self, samples_done: int) -> bool:
        stage, stage_done = self.stages.as_stored() if self.stages is not None else (None, None)
        assert self.engine is not None
        return shard_progress(
            self.engine,
            self.claim.shard_id,
            self.claim.owner,
            samples_done,
            stage=stage,
            stage_done=stage_done,
        )

    def report(self, samples_done: int) -> None:
        """Progress inside a batch: written at most every ``XAIQ_PROGRESS_SECONDS``; never
        stops the shard (a cancel is noticed at the next batch boundary)."""
        now = time.monotonic()
        if self.engine is None or now - self._last < self.every:
            return
        self._last = now
        self.last_done = samples_done
        with contextlib.suppress(Exception):  # best effort, as for the batch checkpoints
            self._write(samples_done)

    def __call__(self, samples_done: int) -> None:
        if self.stop.is_set():
            raise ShardInterrupted(cancelled=False)
        self.last_done = samples_done
        now = time.monotonic()
        if self.engine is None or now - self._last < self.every:
            return
        self._last = now
        try:
            cancel = self._write(samples_done)
        except Exception:  # progress is best effort: a DB hiccup must not fail the shard
            return
        if cancel:
            raise ShardInterrupted(cancelled=True)
