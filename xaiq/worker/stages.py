"""Which stage a job's batches are in, and how many samples each stage has finished.

A disagreement batch goes through explain, compare, then (when asked) faithfulness and
sanity; an attack batch through attack. The kinds call :func:`begin` and :func:`finish`.

Two views are kept. In the process, per job (:func:`snapshot`): what an in-process run's
progress display reads. Per shard (:func:`shard_scope`, opened by the shard's computation):
the shard's current stage and each stage's samples, kept ones included, which the shard's
progress writes to the store (``shards.stage``, ``shards.stage_done``) at most every
``XAIQ_PROGRESS_SECONDS`` and whenever a stage begins; :func:`xaiq.db.jobs.job_progress`
adds them up, so ``xaiq status`` and ``xaiq serve`` show the stages of workers in other
processes and on other hosts.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from xaiq.db.stages import STAGES, job_stages, stored_stages

_LOCK = threading.Lock()
_JOBS: dict[int, dict[str, Any]] = {}


@dataclass
class ShardStages:
    """One shard's stage counts in this run (``done`` starts at the samples kept from an
    earlier run: they finished every stage). ``on_begin``: called when a stage begins."""

    shard_id: int
    stage: str | None = None
    done: dict[str, int] = field(default_factory=dict)
    on_begin: Callable[[], None] | None = None

    def as_stored(self) -> tuple[str | None, dict[str, int]]:
        with _LOCK:
            return self.stage, {s: self.done[s] for s in STAGES if s in self.done}


_SHARD: contextvars.ContextVar[ShardStages | None] = contextvars.ContextVar(
    "xaiq_shard_stages", default=None
)


@contextlib.contextmanager
def shard_scope(shard_id: int, stages: list[str], kept: int) -> Iterator[ShardStages]:
    """The shard computed inside: :func:`begin` and :func:`finish` count for it too."""
    state = ShardStages(shard_id, done={s: int(kept) for s in stages})
    token = _SHARD.set(state)
    try:
        yield state
    finally:
        _SHARD.reset(token)


def begin(job_id: int, stage: str) -> None:
    """The job's current batch entered ``stage``."""
    with _LOCK:
        state = _JOBS.setdefault(int(job_id), {"stage": None, "done": {}})
        state["stage"] = stage
        state["done"].setdefault(stage, 0)
    shard = _SHARD.get()
    if shard is not None:
        with _LOCK:
            shard.stage = stage
            shard.done.setdefault(stage, 0)
        if shard.on_begin is not None:
            with contextlib.suppress(Exception):  # progress is best effort
                shard.on_begin()


def finish(job_id: int, stage: str, n_samples: int) -> None:
    """``stage`` finished ``n_samples`` more samples of the job."""
    with _LOCK:
        state = _JOBS.setdefault(int(job_id), {"stage": None, "done": {}})
        state["done"][stage] = state["done"].get(stage, 0) + int(n_samples)
        shard = _SHARD.get()
        if shard is not None:
            shard.done[stage] = shard.done.get(stage, 0) + int(n_samples)


def snapshot(job_id: int) -> dict[str, Any]:
    """``{"stage": current or None, "done": {stage: samples finished in this process}}``
    (stages in :data:`STAGES` order)."""
    with _LOCK:
        state = _JOBS.get(int(job_id), {"stage": None, "done": {}})
        done = {s: state["done"][s] for s in STAGES if s in state["done"]}
        return {"stage": state["stage"], "done": done}


def reset(job_id: int) -> None:
    """Forget the job's counters (a new run in this process starts from what is kept)."""
    with _LOCK:
        _JOBS.pop(int(job_id), None)


__all__ = [
    "STAGES",
    "ShardStages",
    "begin",
    "finish",
    "job_stages",
    "reset",
    "shard_scope",
    "snapshot",
    "stored_stages",
]
