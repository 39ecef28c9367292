"""Submission: validate a spec, check what it depends on, commit the job and its shards.

Nothing is written unless the spec is valid (and, with a broker, the broker answers). A job
run by the embedded executor gets the queue ``local``: the scheduler never publishes it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from xaiq.db.jobs import create_job, get_job, last_beat
from xaiq.db.models import JobStatus, utcnow
from xaiq.db.session import get_engine, read_session
from xaiq.db.urls import normalise_url, redact_url, scrub
from xaiq.scheduler.errors import BrokerError, SpecError
from xaiq.scheduler.kinds import KINDS
from xaiq.scheduler.labels import check_name, check_tags
from xaiq.scheduler.pins import pin_samples
from xaiq.scheduler.spec import plan_shards, validate_spec

LOCAL_QUEUE = "local"
SCHEDULER_COMPONENT = "scheduler"
SCHEDULER_STALE_SECONDS = 30.0


@dataclass(frozen=True)
class Submitted:
    job_id: int
    n_samples: int
    n_shards: int
    queue: str
    scheduler_alive: bool | None  # None: local job, no scheduler involved


def broker_url() -> str | None:
    """``XAIQ_BROKER_URL`` with ``XAIQ_BROKER_PASSWORD`` in it (see :mod:`xaiq.broker.urls`)
    and its password percent-encoded (:func:`normalise_url`): a password holding ``?``, ``/``
    or ``#`` would otherwise cut the URL in the wrong place."""
    from xaiq.broker.urls import BrokerUrlError
    from xaiq.broker.urls import broker_url as configured

    try:
        url = configured()
    except BrokerUrlError as exc:
        raise BrokerError(str(exc)) from None
    return None if url is None else normalise_url(url)


def check_broker(url: str, timeout: float = 3.0) -> None:
    """Raise :class:`BrokerError` when the broker at ``url`` does not answer."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        first = scrub((str(exc).strip().splitlines() or [type(exc).__name__])[0], url)
        raise BrokerError(f"cannot reach the broker {redact_url(url)}: {first}") from None


def scheduler_alive(engine: Engine, stale_seconds: float = SCHEDULER_STALE_SECONDS) -> bool:
    with read_session(engine) as session:
        row = last_beat(session, SCHEDULER_COMPONENT)
        if row is None:
            return False
        return row.last_seen >= utcnow() - dt.timedelta(seconds=stale_seconds)


def _check_source(engine: Engine, spec: dict[str, Any], target: str | None) -> None:
    """A disagreement ``from_job``: the source job's maps must exist for what is asked, and
    they explain the class the source job chose (``target``, if given, must agree)."""
    from sqlalchemy import select

    from xaiq.db.errors import NotFoundError
    from xaiq.db.models import Attribution

    with read_session(engine) as session:
        try:
            src = get_job(session, spec["from_job"])
        except NotFoundError:
            raise SpecError(f"from_job: no job with id {spec['from_job']}") from None
        if not KINDS[src.kind.value].stores_maps:
            raise SpecError(f"from_job: job {src.id} is a {src.kind.value} job; it has no maps")
        if src.status not in (JobStatus.succeeded, JobStatus.partial):
            raise SpecError(f"from_job: job {src.id} is {src.status.value}, not finished")
        for key in ("dataset", "model"):
            if src.spec[key] != spec[key]:
                raise SpecError(
                    f"from_job: job {src.id} has {key} {src.spec[key]!r}, not {spec[key]!r}"
                )
        stored = set(
            session.scalars(
                select(Attribution.method).where(Attribution.job_id == src.id).distinct()
            )
        )
    methods = spec["methods"] or [m for m in src.spec["methods"] if m in stored]
    missing = [m for m in methods if m not in stored]
    if missing:
        raise SpecError(f"from_job: job {src.id} has no maps for method {missing[0]!r}")
    if len(methods) < 2:
        raise SpecError(f"from_job: job {src.id} has maps for {methods}; a pair needs two")
    source_target = src.spec.get("target", "label")  # stored before the key existed: label
    if target is not None and target != source_target:
        raise SpecError(
            f"target: job {src.id}'s maps explain the {source_target}, not the {target}"
        )
    spec["target"] = source_target
    spec["methods"] = methods
    spec["params"] = {m: src.spec["params"][m] for m in methods}
    spec["n_samples"] = min(spec["n_samples"], src.n_samples)


def _check_source_pins(engine: Engine, source: int, pins: list[tuple[str, str]]) -> None:
    """A ``from_job``'s maps are by sample index: its samples must be the ones pinned now."""
    from xaiq.db.pins import read_pins

    before = read_pins(engine, source, 0, len(pins))
    for index, (key, fp) in enumerate(pins):
        if index in before and before[index] != (key, fp):
            was = before[index][0]
            what = f"is {key!r} now" if was != key else "has other content now"
            raise SpecError(
                f"from_job: job {source}'s sample {index} ({was!r}) {what}; the dataset"
                " changed since its maps were computed"
            )


def submit(
    raw: Mapping[str, Any],
    *,
    engine: Engine | None = None,
    local: bool | None = None,
    broker: str | None = None,
    name: str | None = None,
    tags: Iterable[str] = (),
) -> Submitted:
    """Validate ``raw`` and commit the job with its shards.

    ``local``: run on the embedded executor (default: when no broker URL is configured).
    ``broker``: the broker URL (default ``XAIQ_BROKER_URL``); checked before writing.
    ``name``, ``tags``: the job's labels (:mod:`xaiq.scheduler.labels`).
    """
    from xaiq.xai.datasets import open_dataset

    name, tag_list = check_name(name), check_tags(tags)
    spec = validate_spec(raw)
    engine = engine or get_engine()
    if spec["kind"] == "disagreement" and spec["from_job"] is not None:
        _check_source(engine, spec, raw.get("target"))
    broker = broker or broker_url()
    if local is None:
        local = broker is None
    if not local:
        if broker is None:
            raise BrokerError("no broker configured: set XAIQ_BROKER_URL or run with --local")
        check_broker(broker)
    ranges = plan_shards(spec["n_samples"], spec["shard_size"])
    queue = LOCAL_QUEUE if local else spec["queue"]
    from xaiq.scheduler.protocol import protocol_card

    pins = pin_samples(open_dataset(spec["dataset"]), spec["n_samples"])
    if spec["kind"] == "disagreement" and spec["from_job"] is not None:
        _check_source_pins(engine, spec["from_job"], pins)
    job_id = create_job(
        engine,
        kind=spec["kind"],
        spec=spec,
        ranges=ranges,
        queue=queue,
        name=name,
        tags=tag_list,
        protocol=protocol_card(spec),
        pins=pins,
    )
    alive = None
    if not local:
        from xaiq.broker.wake import notify

        notify(broker)  # the scheduler publishes the first shards now, not at its next tick
        alive = scheduler_alive(engine)
    return Submitted(job_id, spec["n_samples"], len(ranges), queue, alive)
