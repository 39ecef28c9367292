"""A job's protocol card in the store (``jobs.protocol``, JSON): written at submit from the
spec (:func:`xaiq.scheduler.protocol.protocol_card`); every worker process that runs the job
adds a runtime entry (device, versions, weights' sha256) unless an equal one is there."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, select

from xaiq.db.jobs import check_jobs
from xaiq.db.models import Job
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


def protocol_summary(card: Mapping[str, Any] | None) -> str:
    """One line for ``xaiq status``: the settings that change what the numbers mean, then
    each runtime (device, torch, captum, the first 12 hex digits of each weights' sha256)."""
    if not card:
        return "none recorded (job planned before protocol cards)"
    parts = [f"seed={card.get('seeds', {}).get('job')}"]
    faith = card.get("faithfulness") or {}
    for key in ("substrate", "order", "ties", "step", "kernel"):
        if key in faith:
            parts.append(f"{key}={str(faith[key]).split(' ')[0]}")
    attack = card.get("attack") or {}
    for key in ("preset", "clamp", "sigma"):
        if key in attack:
            parts.append(f"{key}={attack[key]}")
    for rt in card.get("runtime", []):
        versions = rt.get("versions") or {}
        shas = ",".join(str(s)[:12] for s in (rt.get("model_sha256") or {}).values())
        parts.append(
            f"| {rt.get('device')} torch {versions.get('torch')} captum {versions.get('captum')}"
            f" sha256 {shas}"
        )
    return " ".join(parts)


def export_protocol(engine: Engine, job_id: int, fmt: str, out: str | Path | IO[Any]) -> int:
    """Write job ``job_id``'s card to ``out`` (a path, or an open stream: text for csv/json,
    binary for parquet; left open): ``json`` the card itself (one document), ``csv``/``parquet``
    the ``field, value`` rows of :func:`protocol_rows`. Returns the number of fields."""
    card = job_protocols(engine, [job_id])[job_id]
    rows = protocol_rows(card)
    if not isinstance(out, str | Path):
        if fmt == "json":
            out.write(json.dumps(card, indent=2) + "\n")
            return len(rows)
        if fmt == "csv":
            writer = csv.DictWriter(out, fieldnames=["field", "value"])
            writer.writeheader()
            writer.writerows(rows)
            return len(rows)
    path = out
    if isinstance(path, str | Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json" and isinstance(path, Path):
        path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    elif fmt == "csv" and isinstance(path, Path):
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["field", "value"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"field": [r["field"] for r in rows], "value": [r["value"] for r in rows]})
        pq.write_table(table, path)
    return len(rows)
