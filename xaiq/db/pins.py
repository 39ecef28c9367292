"""Sample pins: the keys and content fingerprints a job was planned on (``sample_pins``).

Written with the job (:func:`xaiq.db.jobs.create_job`), read by ``xaiq resume`` to refuse a
dataset that changed and by every shard to refuse a sample that changed (``xaiq.scheduler.
pins`` compares). A job planned before pins existed has none: nothing is checked.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from xaiq.db.models import SamplePin
from xaiq.db.session import read_session

Pin = tuple[str, str]  # (key, sha256 hex of the content)


def add_pins(session: Session, job_id: int, pins: Sequence[Pin]) -> None:
    """Pin samples ``0..len(pins)-1`` of ``job_id`` (in the caller's transaction)."""
    if pins:
        session.execute(
            SamplePin.__table__.insert(),  # type: ignore[attr-defined]
            [
                {"job_id": job_id, "sample_index": i, "key": key, "fingerprint": fp}
                for i, (key, fp) in enumerate(pins)
            ],
        )


def read_pins(
    engine: Engine, job_id: int, start: int | None = None, stop: int | None = None
) -> dict[int, Pin]:
    """``{sample_index: (key, fingerprint)}`` of ``job_id`` in ``[start, stop)`` (default:
    every pinned sample); empty for a job planned before pins existed."""
    stmt = select(SamplePin.sample_index, SamplePin.key, SamplePin.fingerprint).where(
        SamplePin.job_id == job_id
    )
    if start is not None:
        stmt = stmt.where(SamplePin.sample_index >= start)
    if stop is not None:
        stmt = stmt.where(SamplePin.sample_index < stop)
    with read_session(engine) as session:
        return {int(i): (str(k), str(fp)) for i, k, fp in session.execute(stmt)}
