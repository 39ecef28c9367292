"""Job and shard statuses change only through ``xaiq.db.transitions``: its table refuses an
illegal change, the expired-lease rule is applied the same way by the reaper and by a
claim, and no other module writes a status."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from xaiq.db.errors import TransitionError
from xaiq.db.jobs import claim_shard, complete_shard, create_job, finalize_job, reap_expired
from xaiq.db.lifecycle import resume_job
from xaiq.db.models import Job, JobStatus, Shard, ShardStatus, utcnow
from xaiq.db.session import get_engine, read_session, write_session
from xaiq.db.transitions import (
    JOB_TRANSITIONS,
    SHARD_TRANSITIONS,
    expired_lease_status,
    job_may_move,
    move_job,
    move_shard,
    settle_expired_lease,
    shard_may_move,
    shards_update,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC = {"kind": "attribution", "dataset": "digits", "model": "m", "max_attempts": 2}


def test_every_status_has_a_row_in_its_table():
    assert set(JOB_TRANSITIONS) == set(JobStatus)
    assert set(SHARD_TRANSITIONS) == set(ShardStatus)
    for table in (JOB_TRANSITIONS, SHARD_TRANSITIONS):
        for current, targets in table.items():
            assert current not in targets  # staying put is not a transition


@pytest.mark.parametrize(
    ("current", "to"),
    [
        (JobStatus.succeeded, JobStatus.running),
        (JobStatus.succeeded, JobStatus.pending),
        (JobStatus.succeeded, JobStatus.failed),
        (JobStatus.failed, JobStatus.succeeded),  # only through running again
        (JobStatus.partial, JobStatus.interrupted),
        (JobStatus.running, JobStatus.pending),
    ],
)
def test_an_illegal_job_transition_is_refused_and_leaves_the_status(current, to):
    job = Job(id=7, status=current)
    assert not job_may_move(current, to)
    with pytest.raises(TransitionError, match=f"job 7: {current.value} -> {to.value}"):
        move_job(job, to)
    assert job.status is current


@pytest.mark.parametrize(
    ("current", "to"),
    [
        (ShardStatus.done, ShardStatus.running),
        (ShardStatus.done, ShardStatus.pending),
        (ShardStatus.failed, ShardStatus.done),
        (ShardStatus.cancelled, ShardStatus.running),
        (ShardStatus.pending, ShardStatus.done),
        (ShardStatus.queued, ShardStatus.failed),
    ],
)
def test_an_illegal_shard_transition_is_refused(current, to):
    shard = Shard(id=3, status=current)
    assert not shard_may_move(current, to)
    with pytest.raises(TransitionError, match=f"shard 3: {current.value} -> {to.value}"):
        move_shard(shard, to)
    assert shard.status is current
    with pytest.raises(TransitionError):
        shards_update(current, to)


def test_the_error_says_what_the_state_may_become():
    with pytest.raises(TransitionError, match=r"may: nothing \(final\)"):
        move_shard(Shard(id=1, status=ShardStatus.done), ShardStatus.pending)
    with pytest.raises(TransitionError, match=r"may: pending, running\)"):
        move_job(Job(id=1, status=JobStatus.failed), JobStatus.partial)


def test_the_lifecycle_path_is_allowed():
    job = Job(id=1, status=JobStatus.pending)
    for to in (JobStatus.running, JobStatus.interrupted, JobStatus.running, JobStatus.partial):
        move_job(job, to)
    move_job(job, JobStatus.running)  # retried
    move_job(job, JobStatus.succeeded)
    shard = Shard(id=1, status=ShardStatus.pending)
    for step in ("queued", "running", "pending", "running", "failed", "pending", "running"):
        move_shard(shard, ShardStatus(step))
    move_shard(shard, ShardStatus.running)  # a dead worker's shard claimed again
    move_shard(shard, ShardStatus.done)


def _expired(attempts: int) -> Shard:
    old = utcnow() - dt.timedelta(seconds=60)
    return Shard(
        id=1, status=ShardStatus.running, attempts=attempts, lease_owner="w1", lease_expires_at=old
    )


def test_the_expired_lease_rule():
    job = Job(id=1, status=JobStatus.running, spec={"max_attempts": 2}, cancel_requested=False)
    now = utcnow()
    retry = _expired(1)
    assert settle_expired_lease(retry, job, now) is ShardStatus.pending
    assert retry.error == "lease of w1 expired (worker lost?)" and retry.lease_owner is None
    assert retry.finished_at is None
    spent = _expired(2)
    assert settle_expired_lease(spent, job, now) is ShardStatus.failed
    assert spent.error == "failed after 2 attempts: lease of w1 expired (worker lost?)"
    assert spent.finished_at == now
    job.cancel_requested = True
    assert expired_lease_status(_expired(2), job) is ShardStatus.cancelled
    assert expired_lease_status(_expired(1), None) is ShardStatus.cancelled


def _job_with_shards(engine, n: int = 2) -> int:
    return create_job(
        engine, kind="attribution", spec=SPEC, ranges=[(i, i + 1) for i in range(n)], queue="cpu"
    )


def test_a_succeeded_job_is_not_resumed_through_the_store(home):
    engine = get_engine()
    job_id = _job_with_shards(engine)
    with read_session(engine) as session:
        ids = list(session.scalars(select(Shard.id).where(Shard.job_id == job_id)))
    for shard_id in ids:
        claim = claim_shard(engine, shard_id, "w", 60, from_pending=True)
        assert claim is not None and complete_shard(engine, claim, {})
    with write_session(engine) as session:
        assert finalize_job(session, job_id) is JobStatus.succeeded
    with pytest.raises(TransitionError, match="succeeded -> running"):
        resume_job(engine, job_id)
    with read_session(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status is JobStatus.succeeded
        assert job.finished_at is not None  # the refused change rolled back


def test_claim_and_reaper_apply_the_same_expired_lease_rule(home):
    engine = get_engine()
    job_id = _job_with_shards(engine, 4)
    with read_session(engine) as session:
        ids = list(session.scalars(select(Shard.id).where(Shard.job_id == job_id)))
    for shard_id in ids:
        assert claim_shard(engine, shard_id, "dead", 60, from_pending=True) is not None
    past = utcnow() - dt.timedelta(seconds=5)
    with write_session(engine) as session:
        for shard in session.scalars(select(Shard).where(Shard.id.in_(ids))):
            shard.lease_expires_at = past  # test setup: the workers died
            shard.attempts = 2 if shard.id in ids[:2] else 1
    # at the cap: a claim fails the shard as the reaper fails the other one
    assert claim_shard(engine, ids[0], "w2", 60) is None
    below_cap = claim_shard(engine, ids[2], "w2", 60)  # below it: claimed again
    assert below_cap is not None and below_cap.attempt == 2
    reaped = dict(reap_expired(engine, job_id))
    assert reaped == {ids[1]: "failed", ids[3]: "pending"}
    with read_session(engine) as session:
        shards = {s.id: s for s in session.scalars(select(Shard).where(Shard.job_id == job_id))}
    for failed in ids[:2]:
        assert shards[failed].status is ShardStatus.failed
        assert (
            shards[failed].error == "failed after 2 attempts: lease of dead expired (worker lost?)"
        )
        assert shards[failed].lease_owner is None and shards[failed].finished_at is not None
    assert shards[ids[2]].status is ShardStatus.running and shards[ids[2]].lease_owner == "w2"
    assert shards[ids[3]].error == "lease of dead expired (worker lost?)"


# --- nothing else writes a status --------------------------------------------------------

STATUS_ENUMS = {"JobStatus", "ShardStatus"}


def status_writes(tree: ast.AST) -> list[int]:
    """Lines that write a job or shard status: ``x.status = ...`` (also in a tuple or an
    augmented assignment), ``setattr(x, "status", ...)``, ``status=`` given to ``.values()``,
    ``Job(...)``, ``Shard(...)``, and a ``{"status": ...Status.x}`` dict (``.values(**d)``)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "status":
            if isinstance(node.ctx, ast.Store | ast.Del):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("values", "Job", "Shard") and any(k.arg == "status" for k in node.keywords):
                lines.append(node.lineno)
            if name == "setattr" and any(
                isinstance(a, ast.Constant) and a.value == "status" for a in node.args
            ):
                lines.append(node.lineno)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "status":
                    names = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
                    if names & STATUS_ENUMS:
                        lines.append(node.lineno)
    return sorted(lines)


# the synthetic rows of the benchmarks insert a job born succeeded (no shards, no lifecycle):
# a creation, not a change of status
CREATES_A_FINISHED_JOB = {"xaiq/analysis/synthetic.py": 1}
PACKAGE_FILES = sorted(
    p for p in (ROOT / "xaiq").rglob("*.py") if p != ROOT / "xaiq" / "db" / "transitions.py"
)


@pytest.mark.parametrize(
    "path", PACKAGE_FILES, ids=[str(p.relative_to(ROOT)) for p in PACKAGE_FILES]
)
def test_no_module_but_transitions_writes_a_status(path):
    lines = status_writes(ast.parse(path.read_text(), filename=str(path)))
    expected = CREATES_A_FINISHED_JOB.get(str(path.relative_to(ROOT)), 0)
    assert len(lines) == expected, f"{path.relative_to(ROOT)} writes a status at lines {lines}"


def test_the_checker_sees_every_way_of_writing_a_status():
    code = """
shard.status = ShardStatus.failed
shard.status, shard.error = ShardStatus.pending, reason
update(Shard).values(status=ShardStatus.done)
Job(kind=k, status=JobStatus.pending)
setattr(job, "status", x)
values = {"status": ShardStatus.cancelled if c else ShardStatus.pending}
"""
    assert status_writes(ast.parse(code)) == [2, 3, 4, 5, 6, 7]
    assert status_writes(ast.parse("if job.status is JobStatus.pending:\n    pass\n")) == []
    assert status_writes(ast.parse('print({"status": job.status.value})\n')) == []
