"""A job's protocol card in the store (``jobs.protocol``, JSON): written at submit from the
spec (:func:`xaiq.scheduler.protocol.protocol_card`); every worker process that runs the job
adds a runtime entry (device, versions, weights' sha256) unless an equal one is there."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Engine, select

from xaiq.db.models import Job
from xaiq.db.queries import check_jobs
from xaiq.db.session import read_session, write_session

MAX_RUNTIMES = 32  # a card lists at most this many distinct runtimes (then: "more": true)


def add_protocol_runtime(engine: Engine, job_id: int, entry: Mapping[str, Any]) -> bool:
    """Append ``entry`` to the card's ``runtime`` list unless an equal entry is there;
    True when the card changed. A job without a card (planned before cards existed) gets one
    holding only the runtime."""
    with write_session(engine) as session:
        stmt = select(Job).where(Job.id == job_id)
        if engine.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        job = session.execute(stmt).scalar_one_or_none()
        if job is None:
            return False
        card = dict(job.protocol or {"card": "partial: written by a worker"})
        runtimes = list(card.get("runtime", []))
        if dict(entry) in runtimes:
            return False
        if len(runtimes) >= MAX_RUNTIMES:
            card["more_runtimes"] = True
        else:
            runtimes.append(dict(entry))
        card["runtime"] = runtimes
        job.protocol = card  # a new dict: the JSON column sees the change
        return True


def job_protocols(
    engine: Engine, job_ids: Iterable[int] | None = None
) -> dict[int, dict[str, Any] | None]:
    """``{job id: card or None}`` for the selected jobs (default: every job)."""
    jobs = check_jobs(engine, job_ids)
    stmt = select(Job.id, Job.protocol).order_by(Job.id)
    if jobs:
        stmt = stmt.where(Job.id.in_(jobs))
    with read_session(engine) as session:
        return {int(i): p for i, p in session.execute(stmt)}


def protocol_rows(card: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The card flattened to ``{"field": dotted key, "value": text}`` rows (for tables,
    the report and CSV): nested objects become dotted keys, lists of scalars are joined."""
    rows: list[dict[str, Any]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list) and any(isinstance(v, Mapping | list) for v in value):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        elif isinstance(value, list):
            rows.append({"field": prefix, "value": ", ".join(str(v) for v in value)})
        else:
            rows.append({"field": prefix, "value": "" if value is None else str(value)})

    walk("", dict(card or {}))
    return rows
