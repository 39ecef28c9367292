"""Which stage a job's batches are in, and how many samples each stage has finished.

A disagreement batch goes through explain, compare, then (when asked) faithfulness and
sanity; an attack batch through attack. The kinds call :func:`begin` and :func:`finish`; a
progress display in the same process (an in-process job: ``xaiq submit`` without a broker,
``xaiq resume``) reads :func:`snapshot`. Workers in other processes keep their own counters,
which no display sees: there the store's per-batch sample counts are the progress.
"""

from __future__ import annotations

import threading
from typing import Any

STAGES = ("explain", "compare", "faithfulness", "sanity", "attack")
_LOCK = threading.Lock()
_JOBS: dict[int, dict[str, Any]] = {}


def begin(job_id: int, stage: str) -> None:
    """The job's current batch entered ``stage``."""
    with _LOCK:
        state = _JOBS.setdefault(int(job_id), {"stage": None, "done": {}})
        state["stage"] = stage
        state["done"].setdefault(stage, 0)


def finish(job_id: int, stage: str, n_samples: int) -> None:
    """``stage`` finished ``n_samples`` more samples of the job."""
    with _LOCK:
        state = _JOBS.setdefault(int(job_id), {"stage": None, "done": {}})
        state["done"][stage] = state["done"].get(stage, 0) + int(n_samples)


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


__all__ = ["STAGES", "begin", "finish", "reset", "snapshot"]
