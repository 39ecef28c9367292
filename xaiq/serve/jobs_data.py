"""What the Jobs page and a sample's page read: the job list with each job's progress (the
numbers of ``xaiq status``: :func:`xaiq.db.jobs.job_progress`) and one sample's rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from xaiq.db.models import (
    AttackResult,
    AttackStrategyResult,
    Attribution,
    Disagreement,
    Faithfulness,
    Job,
    JobKind,
    JobStatus,
    SanityCheck,
)
from xaiq.report.data import job_models

MAX_JOBS = 200


def _plain(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat(timespec="seconds")
    return value


def jobs_rows(
    engine: Engine, *, status: str | None = None, kind: str | None = None, limit: int = MAX_JOBS
) -> list[dict[str, Any]]:
    """The newest jobs (id descending) with their progress, JSON-ready: job, name, tags,
    kind, status, dataset, models, n_samples, samples_finished, samples_failed, percent,
    shards (per status), stages (of an unfinished job: the running batches' stages and each
    stage's samples, as the workers last stored them) and stage_text, rate, eta_seconds,
    created_at, finished_at, error."""
    from xaiq.db.jobs import job_progress
    from xaiq.db.labels import job_tags
    from xaiq.db.session import read_session
    from xaiq.db.stages import stage_text

    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(Job.status == JobStatus(status))
    if kind:
        stmt = stmt.where(Job.kind == JobKind(kind))
    out = []
    with read_session(engine) as session:
        jobs = list(session.scalars(stmt))
        tags_of = job_tags(session, [j.id for j in jobs])
        for job in jobs:
            p = job_progress(session, job.id, rows=False)  # no count of result rows
            total = max(int(job.n_samples), 1)
            out.append(
                {
                    "job": job.id,
                    "name": job.name or "",
                    "tags": list(tags_of.get(job.id, [])),
                    "kind": job.kind.value,
                    "status": job.status.value,
                    "dataset": job.dataset,
                    "models": job_models(job),
                    "n_samples": int(job.n_samples),
                    "samples_finished": p["samples_finished"],
                    "samples_failed": p["samples_failed"],
                    "percent": round(100.0 * p["samples_finished"] / total, 1),
                    "shards": p["shards"],
                    "stages": p["stages"],
                    "stage_text": stage_text(p),
                    "rate": p["rate"],
                    "eta_seconds": p["eta_seconds"],
                    "created_at": _plain(job.created_at),
                    "finished_at": _plain(job.finished_at),
                    "error": (job.error or "")[:300],
                }
            )
    return out


def sample_rows(engine: Engine, job: Any, idx: int) -> list[Any]:
    """One sample's stored rows, one table per result table that has any."""
    from xaiq.report.data import maps_job_id
    from xaiq.serve.tables import Table

    specs = [
        ("attributions", Attribution, maps_job_id(job)),
        ("disagreements", Disagreement, job.id),
        ("faithfulness", Faithfulness, job.id),
        ("sanity", SanityCheck, job.id),
        ("attack", AttackResult, job.id),
        ("attack-strategies", AttackStrategyResult, job.id),
    ]
    out = []
    skip = {"id", "job_id", "sample_index", "checksum", "artifact"}
    with engine.connect() as conn:
        for name, model, job_id in specs:
            table = model.__table__
            stmt = (
                select(table)
                .where(table.c.job_id == job_id, table.c.sample_index == idx)
                .order_by(table.c.id)
            )
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
            if rows:
                cols = [c.name for c in table.columns if c.name not in skip]
                out.append(Table(name, name.replace("-", " ").capitalize(), rows, cols))
    return out


__all__ = ["MAX_JOBS", "jobs_rows", "sample_rows"]
