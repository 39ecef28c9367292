"""The shard function: claim a shard's lease, compute its rows, write them and mark it done
(and finalise the job when that was its last unfinished shard).

Used by the Celery task and by the embedded executor alike, so both paths write the same
rows. While a shard computes, a thread renews its lease; if the lease is lost (the scheduler
gave the shard to someone else) the final write is refused and nothing lands twice.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from xaiq.analysis.digest import build_digest_quietly
from xaiq.db.jobs import (
    Claim,
    claim_shard,
    complete_shard,
    complete_shard_by_sample,
    fail_attempt,
    finalize_job,
    renew_lease,
)
from xaiq.db.models import Job, ShardStatus
from xaiq.db.retry import DB_RETRY_SECONDS, is_transient, with_db_retry  # noqa: F401 (re-exported)
from xaiq.db.session import write_session

DEFAULT_LEASE_SECONDS = 120.0


def lease_seconds() -> float:
    """Lease length from ``XAIQ_LEASE_SECONDS`` (default 120 s; renewed every third of it)."""
    return float(os.environ.get("XAIQ_LEASE_SECONDS", DEFAULT_LEASE_SECONDS))


def owner_name(prefix: str = "worker") -> str:
    return f"{prefix}@{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


@dataclass(frozen=True)
class ShardOutcome:
    shard_id: int
    status: str  # done, lost (lease taken over), pending, failed, skipped, interrupted, cancelled
    rows: int = 0
    errors: int = 0
    message: str | None = None


class _LeaseKeeper:
    """Renews a lease every ``lease/3`` seconds until stopped; notes when it is lost."""

    def __init__(self, engine: Engine, claim: Claim, lease: float) -> None:
        self.engine, self.claim, self.lease = engine, claim, lease
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="xaiq-lease", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                if not renew_lease(self.engine, self.claim.shard_id, self.claim.owner, self.lease):
                    self.lost = True
                    return
            except Exception:  # a DB hiccup: try again at the next tick
                continue

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def run_claim(
    engine: Engine,
    claim: Claim,
    *,
    device: Any = None,
    lease: float | None = None,
    compute: Callable[..., dict[str, list[dict[str, Any]]]] | None = None,
    stop: threading.Event | None = None,
) -> ShardOutcome:
    """Compute a claimed shard and write it (rows + done in one transaction). Between
    batches it reports progress and stops when ``stop`` (default: the process's
    :data:`~xaiq.worker.checkpoint.STOP`) is set or the job is cancelled: the batches done
    are written and the shard goes back to pending (or cancelled), see
    :func:`xaiq.db.lifecycle.suspend_shard`."""
    from xaiq.db.lifecycle import committed_samples
    from xaiq.worker.checkpoint import Checkpoint, ShardInterrupted

    if compute is None:
        from xaiq.worker.compute import compute_shard as compute
    lease = lease or lease_seconds()
    try:
        skip = (  # only a shard stopped before can have rows already (one query less per shard)
            with_db_retry(committed_samples, engine, claim.job_id, claim.start, claim.stop)
            if claim.samples_done
            else set()
        )
        checkpoint = Checkpoint(engine, claim, skip, stop)
        with _LeaseKeeper(engine, claim, lease):
            tables = compute(claim, device=device, engine=engine, checkpoint=checkpoint)
    except ShardInterrupted as interrupted:
        return _suspend(engine, claim, interrupted)
    except Exception as exc:  # the whole shard failed (model load, bug, DB): count an attempt
        return _fail(engine, claim, exc)
    try:
        written = _write(engine, claim, tables)
    except Exception as exc:
        if is_transient(exc):  # the store is down past the retry window: the lease will expire
            raise
        return _fail(engine, claim, exc)  # the store refuses even the error rows
    if not written:
        return ShardOutcome(claim.shard_id, "lost", message="lease was taken over")
    _finalise_quietly(engine, claim.job_id)
    n_rows = sum(len(v) for k, v in tables.items() if k != "sample_errors")
    return ShardOutcome(claim.shard_id, "done", n_rows, len(tables["sample_errors"]))


def _write(engine: Engine, claim: Claim, tables: dict[str, list[dict[str, Any]]]) -> bool:
    """Rows + done in one transaction; when the store refuses a row (a non-UTF-8 file name,
    an integer past 64 bits), again sample by sample so that only the bad samples fail."""
    try:
        return bool(with_db_retry(complete_shard, engine, claim, tables))
    except Exception as exc:
        if not is_row_fault(exc):
            raise
    return bool(with_db_retry(complete_shard_by_sample, engine, claim, tables, is_row_fault))


def is_row_fault(exc: BaseException) -> bool:
    """An error caused by a value the store cannot hold (text that is not UTF-8, an integer
    past 64 bits), as opposed to the store failing (read-only, disk full, no schema)."""
    from sqlalchemy.exc import DataError, StatementError

    if isinstance(exc, StatementError) and not isinstance(exc, DataError):
        return isinstance(exc.orig, ValueError | ArithmeticError)
    return isinstance(exc, ValueError | ArithmeticError | DataError)


def _fail(engine: Engine, claim: Claim, exc: Exception) -> ShardOutcome:
    text = str(exc).strip()
    message = f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
    cap = int(claim.spec.get("max_attempts", 3))
    status = with_db_retry(fail_attempt, engine, claim, message, cap)
    if status is ShardStatus.failed:  # past the attempt cap: perhaps the job's last shard
        _finalise_quietly(engine, claim.job_id)
    return ShardOutcome(claim.shard_id, status.value if status else "lost", message=message)


def _suspend(engine: Engine, claim: Claim, interrupted: Any) -> ShardOutcome:
    from xaiq.db.lifecycle import suspend_shard

    tables = interrupted.tables
    kept = with_db_retry(
        suspend_shard,
        engine,
        claim.shard_id,
        claim.owner,
        tables,
        interrupted.samples_done,
        cancelled=interrupted.cancelled,
    )
    if not kept:
        return ShardOutcome(claim.shard_id, "lost", message="lease was taken over")
    if interrupted.cancelled:
        _finalise_quietly(engine, claim.job_id)
    n_rows = sum(len(v) for k, v in tables.items() if k != "sample_errors")
    status = "cancelled" if interrupted.cancelled else "interrupted"
    return ShardOutcome(claim.shard_id, status, n_rows, len(tables.get("sample_errors", [])))


def _finalise_quietly(engine: Engine, job_id: int) -> None:
    """The worker that finishes a job's last shard finalises it at once. The scheduler stays
    the backstop: finalising is idempotent and a no-op while shards are unfinished, so a
    failure here is not retried."""
    finished = False
    with contextlib.suppress(Exception), write_session(engine) as session:
        finalize_job(session, job_id)
        finished = session.get(Job, job_id).finished_at is not None  # type: ignore[union-attr]
    if finished:  # committed: the job's rows are final, summarise them for the stats
        build_digest_quietly(engine, job_id)


def process_shard(
    engine: Engine,
    shard_id: int,
    *,
    owner: str | None = None,
    device: Any = None,
    lease: float | None = None,
    from_pending: bool = False,
    stop: threading.Event | None = None,
) -> ShardOutcome:
    """Claim shard ``shard_id`` and run it; ``skipped`` when it is not ours to run (done,
    cancelled, failed or leased by a live worker: a duplicate delivery)."""
    owner = owner or owner_name()
    lease = lease or lease_seconds()
    claim = with_db_retry(claim_shard, engine, shard_id, owner, lease, from_pending=from_pending)
    if claim is None:
        return ShardOutcome(shard_id, "skipped")
    return run_claim(engine, claim, device=device, lease=lease, stop=stop)
