"""Job names and tags: the jobs one selects by them, and each job's labels.

A name is not unique: ``--job baseline`` selects every job named ``baseline``. Tags filter
``xaiq list --tag``; several tags select the jobs that have all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, Select, func, select
from sqlalchemy.orm import Session

from xaiq.db.errors import NotFoundError
from xaiq.db.models import Job, JobTag


def job_tags(session: Session, job_ids: Iterable[int]) -> dict[int, list[str]]:
    """``{job id: its tags in alphabetical order}`` (jobs without tags are left out)."""
    ids = list(job_ids)
    out: dict[int, list[str]] = {}
    if not ids:
        return out
    stmt = select(JobTag.job_id, JobTag.tag).where(JobTag.job_id.in_(ids)).order_by(JobTag.tag)
    for job_id, tag in session.execute(stmt):
        out.setdefault(int(job_id), []).append(str(tag))
    return out


def jobs_with_tags(tags: Sequence[str]) -> Select[Any]:
    """A subquery of the ids of the jobs that carry every tag of ``tags``."""
    return (
        select(JobTag.job_id)
        .where(JobTag.tag.in_(list(tags)))
        .group_by(JobTag.job_id)
        .having(func.count(func.distinct(JobTag.tag)) == len(set(tags)))
    )


def resolve_jobs(engine: Engine, selection: Iterable[int | str] | None) -> list[int]:
    """Job ids for ``selection``: ids as they are, a name as every job of that name (in id
    order). Unknown ids are left to the caller's check; a name no job has raises
    :class:`NotFoundError` naming it."""
    out: list[int] = []
    for item in selection or []:
        if isinstance(item, int) or str(item).isdigit():
            out.append(int(item))
            continue
        with engine.connect() as conn:
            ids = list(conn.scalars(select(Job.id).where(Job.name == str(item)).order_by(Job.id)))
        if not ids:
            raise NotFoundError(f"no job named {str(item)!r}")
        out += ids
    return list(dict.fromkeys(out))
