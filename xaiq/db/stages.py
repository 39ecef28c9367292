"""Stages of a job's samples, as the store keeps them: which stages a job kind goes through,
each stage's count summed over the job's shards, and the one-line text shown by
``xaiq status`` and ``xaiq serve``. Plain data: the worker (:mod:`xaiq.worker.stages`) keeps
the counts while it runs and writes them to the shard rows."""

from __future__ import annotations

from typing import Any

STAGES = ("explain", "compare", "faithfulness", "sanity", "attack")


def job_stages(kind: str, spec: dict[str, Any]) -> list[str]:
    """The stages every sample of a job of ``kind`` with ``spec`` goes through, in order."""
    if kind == "attack":
        return ["attack"]
    if kind != "disagreement":
        return ["explain"]
    out = ["explain", "compare"]
    if spec.get("faithfulness"):
        out.append("faithfulness")
    if spec.get("sanity"):
        out.append("sanity")
    return out


def stored_stages(
    stages: list[str],
    finished: int,
    open_shards: list[tuple[bool, int | None, str | None, dict[str, Any] | None]],
) -> dict[str, Any]:
    """A job's stages from the store: ``finished`` samples of finished shards went through
    every stage; each open shard is ``(running, samples_done, stage, stage_done)``. A
    running shard counts its stored stage counts, any other its samples done (what a new
    run keeps). ``{"stage": running stages joined or None, "done": {stage: samples}}``."""
    done = dict.fromkeys(stages, int(finished))
    current: set[str] = set()
    for running, samples_done, stage, stage_done in open_shards:
        kept = int(samples_done or 0)
        counts = stage_done if running and isinstance(stage_done, dict) else {}
        for s in stages:
            done[s] += int(counts.get(s, kept))
        if running and stage:
            current.add(stage)
    now = ", ".join(s for s in STAGES if s in current)
    return {"stage": now or None, "done": done}


def stage_text(p: dict[str, Any]) -> str:
    """``stage faithfulness (explain 24/300, compare 24/300, faithfulness 12/300)`` (empty when no
    stage is known: a job computed by workers in other processes)."""
    st = p.get("stages") or {}
    if not st.get("done") and not st.get("stage"):
        return ""
    total = max(int(p["n_samples"]), 0)
    kept = int(st.get("kept", 0))
    counts = ", ".join(f"{k} {kept + v}/{total}" for k, v in st["done"].items())
    now = f"stage {st['stage']}" if st.get("stage") else ""
    if not counts:
        return now
    return f"{now} ({counts})" if now else f"({counts})"


__all__ = ["STAGES", "job_stages", "stage_text", "stored_stages"]
