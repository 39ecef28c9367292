"""Job commands that follow and steer jobs: status, list, wait, cancel, retry; and the
helpers ``submit`` and ``resume`` share (run here with progress, wait, print progress).

``submit`` is :mod:`xaiq.cli.submit`; the long-running processes (worker, scheduler, ...)
are :mod:`xaiq.cli.processes`. None of these import torch at module level.
"""

from __future__ import annotations

import time
from typing import Any

import typer

from xaiq.cli.app import app
from xaiq.cli.errors import CliError
from xaiq.cli.limits import JOB_ID_MAX
from xaiq.cli.options import FormatOption, JsonFlag, output_format, split_list
from xaiq.cli.output import OutputFormat, emit, emit_json, info


def _split(values: list[str] | None) -> list[str] | None:
    return split_list(values)


def exit_unless_succeeded(p: dict[str, Any]) -> None:
    """A job that was run or waited for and did not succeed: one line with its status and
    why on stderr, exit 1 (STYLE.md's table)."""
    if p.get("status") == "succeeded":
        return
    why = f": {p['error']}" if p.get("error") else ""
    info(f"job {p.get('job')} ended {p.get('status')}{why}")
    raise typer.Exit(1)


def run_local_with_progress(job_id: int, device: str | None, quiet: bool) -> dict[str, Any]:
    """See :func:`xaiq.cli.progress.run_local_with_progress` (kept here for the demo)."""
    from xaiq.cli.progress import run_local_with_progress as run

    return run(job_id, device, quiet)


def reap_local(job_id: int | None = None) -> None:
    """Any command that looks at jobs first reaps in-process jobs whose process is gone."""
    from rich.markup import escape

    from xaiq.db.lifecycle import reap_orphans
    from xaiq.db.session import get_engine

    for orphan in reap_orphans(get_engine(), job_id):
        who = f"process {escape(orphan.owner)}" if orphan.owner else "its process"
        info(
            f"job {orphan.job_id}: {who} is gone; marked interrupted "
            f"(resume with `xaiq resume {orphan.job_id}`)"
        )


def wait_for_job(job_id: int, timeout: float | None, quiet: bool, interval: float = 0.5) -> dict:
    """Poll the job until it finishes (or is interrupted: an in-process job whose process
    is gone is reaped on the way, so this never waits for an orphan)."""
    from xaiq.cli.progress import ProgressView
    from xaiq.db.jobs import job_progress
    from xaiq.db.retry import with_db_retry
    from xaiq.db.session import read_session

    def poll() -> dict[str, Any]:
        with read_session() as session:
            return job_progress(session, job_id)

    deadline = None if timeout is None else time.monotonic() + timeout
    last_reap = -float("inf")
    with ProgressView(quiet) as view:
        while True:
            if time.monotonic() - last_reap >= 2.0:
                with_db_retry(reap_local, job_id)  # a database restart is waited out,
                last_reap = time.monotonic()  # as the job itself waits it out
            p = with_db_retry(poll)
            view.update(p)
            if p["finished_at"] is not None or p["status"] == "interrupted":
                return p
            if deadline is not None and time.monotonic() > deadline:
                raise CliError(f"job {job_id} still {p['status']} after {timeout:g} s")
            time.sleep(interval)


def print_progress(p: dict[str, Any], fmt: OutputFormat | bool) -> None:
    """A job's progress as one JSON object (``fmt`` json or True) or field/value rows."""
    if fmt is True or fmt is OutputFormat.json:
        emit_json(p)
        return
    shards = p.get("shards")
    rows = {k: v for k, v in p.items() if k != "shards"}
    if shards:
        rows["shards"] = ", ".join(f"{k} {v}" for k, v in shards.items() if v)
    if "stages" in rows:  # the running batches' stages and each stage's samples
        from xaiq.db.stages import stage_text

        rows["stages"] = stage_text(p)
    if rows.get("rate") is not None:
        rows["rate"] = f"{rows['rate']:.2f} samples/s"
    if rows.get("eta_seconds") is not None:
        rows["eta_seconds"] = f"{rows['eta_seconds']:.0f}"
    out = fmt if isinstance(fmt, OutputFormat) else OutputFormat.table
    emit([{"field": k, "value": v} for k, v in rows.items()], out)


@app.command("status")
def status_cmd(
    job: int = typer.Argument(..., help="job id", min=1, max=JOB_ID_MAX),
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """Progress of a job: shards per status, samples done/failed (and the first failures),
    rate, ETA, and its protocol card in one line (`xaiq export JOB --what protocol`: all)."""
    out = output_format(fmt, as_json)
    as_json = out is OutputFormat.json
    from xaiq.db.jobs import get_job, job_progress
    from xaiq.db.lifecycle import job_errors
    from xaiq.db.protocol import protocol_summary
    from xaiq.db.session import read_session

    reap_local(job)
    with read_session() as session:
        p = job_progress(session, job)
        card = get_job(session, job).protocol
        first = (
            job_errors(session, job, limit=5)
            if p["samples_failed"] or p["shards"]["failed"]
            else []
        )
    if as_json:
        emit_json({**p, "first_errors": first, "protocol": card})
        return
    print_progress({**p, "protocol": protocol_summary(card)}, out)
    if first and out is OutputFormat.table:
        emit(first, out, title=f"first failures (all: `xaiq errors {job}`)")


LIST_COLUMNS = [
    "job",
    "name",
    "kind",
    "status",
    "model",
    "samples",
    "shards_done",
    "tags",
    "dataset",
    "queue",
    "priority",
    "created_at",
]
# what a narrow terminal leaves out first (the last first)
LIST_OPTIONAL = ["tags", "dataset", "queue", "priority", "created_at"]


def job_models(job: Any) -> str:
    """Every model a job uses (a cross-model job's ``models``), comma-separated."""
    models = (job.spec or {}).get("models")
    if isinstance(models, list) and len(models) > 1:
        return ",".join(str(m) for m in models)
    return str(job.model)


@app.command("list")
def list_cmd(
    status: list[str] = typer.Option(None, "--status", help="only these job statuses"),
    tag: list[str] = typer.Option(
        None, "--tag", "-t", help="only jobs with every one of these tags (repeatable)"
    ),
    name: str = typer.Option(None, "--name", help="only jobs of this name"),
    limit: int = typer.Option(50, "--limit", help="newest N jobs"),
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """The newest jobs with their name, tags, status and progress."""
    out = output_format(fmt, as_json)
    as_json = out is OutputFormat.json
    from xaiq.db.jobs import jobs_list, shard_counts
    from xaiq.db.labels import job_tags
    from xaiq.db.models import JobStatus
    from xaiq.db.session import read_session

    wanted = _split(status)
    for s in wanted or []:
        if s not in JobStatus.__members__:
            raise CliError(f"unknown job status {s!r}; known: {', '.join(JobStatus.__members__)}")
    tags = _split(tag) or []
    reap_local()
    with read_session() as session:
        jobs = jobs_list(session, limit, wanted, tags=tags, name=name)
        labels = job_tags(session, [j.id for j in jobs])
        rows = []
        for job in jobs:
            counts = shard_counts(session, job.id)
            total = sum(counts.values())
            created = job.created_at.isoformat(timespec="seconds")
            if out is OutputFormat.table:  # a space: the date and the time wrap apart
                created = created.replace("T", " ")
            rows.append(
                {
                    "job": job.id,
                    "name": job.name if as_json else (job.name or ""),
                    "kind": job.kind.value,
                    "status": job.status.value,
                    "model": job_models(job),
                    "samples": job.n_samples,
                    "shards_done": f"{counts['done']}/{total}",
                    "tags": labels.get(job.id, []) if as_json else ",".join(labels.get(job.id, [])),
                    "dataset": job.dataset,
                    "queue": job.queue,
                    "priority": job.priority,
                    "created_at": created,
                }
            )
    if not rows:  # say so (on stderr), naming the store; csv/json still print their header/[]
        from xaiq.db.session import get_engine

        where = get_engine().url.render_as_string(hide_password=True)
        which = [f"status {', '.join(wanted)}"] if wanted else []
        which += [f"tags {', '.join(tags)}"] if tags else []
        which += [f"name {name!r}"] if name else []
        info(f"no jobs in {where}" + (f" with {'; '.join(which)}" if which else ""))
        if out is OutputFormat.table:
            return
    if as_json:
        emit_json(rows)
    else:
        emit(rows, out, title="jobs", columns=LIST_COLUMNS, optional=LIST_OPTIONAL)


@app.command("wait")
def wait_cmd(
    job: int = typer.Argument(..., help="job id", min=1, max=JOB_ID_MAX),
    timeout: float = typer.Option(None, "--timeout", help="give up after N seconds"),
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """Wait for a job to finish, with a progress bar (a plain line every few seconds when
    not on a terminal); exit 1 unless it succeeded. An in-process job whose process is gone
    ends the wait at once, saying how to resume it."""
    out = output_format(fmt, as_json)
    as_json = out is OutputFormat.json
    p = wait_for_job(job, timeout, quiet=as_json)
    print_progress(p, out)
    if p["status"] == "interrupted":
        info(f"job {job} is interrupted (no live process runs it); resume: `xaiq resume {job}`")
    if p["status"] != "succeeded":
        raise typer.Exit(1)


@app.command("cancel")
def cancel_cmd(
    job: int = typer.Argument(..., help="job id", min=1, max=JOB_ID_MAX), as_json: JsonFlag = False
) -> None:
    """Cancel a job that has not finished: unstarted shards at once, running shards after
    their current batch (their finished batches are kept). A finished job: exit 1."""
    from xaiq.db.jobs import get_job, request_cancel, shard_counts
    from xaiq.db.session import get_engine, read_session

    reap_local(job)
    with read_session() as session:
        j = get_job(session, job)
        finished = j.status.value if j.finished_at is not None else None
        counts = shard_counts(session, job)
    if finished is not None:
        if as_json:
            emit_json({"job": job, "status": finished, "shards": counts})
        info(f"job {job} already finished ({finished}); nothing to cancel")
        raise typer.Exit(1)
    counts = request_cancel(get_engine(), job)
    if as_json:
        emit_json({"job": job, "shards": counts})
    else:
        info(
            f"job {job}: cancel requested; shards "
            + ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        )


@app.command("retry")
def retry_cmd(
    job: int = typer.Argument(..., help="job id", min=1, max=JOB_ID_MAX),
    local: bool = typer.Option(False, "--local", help="run the retried shards in-process"),
    device: str = typer.Option(None, "--device", help="device for --local"),
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """Re-run a job's failed (and cancelled) shards; an interrupted job is resumed."""
    out = output_format(fmt, as_json)
    as_json = out is OutputFormat.json
    from xaiq.db.jobs import get_job, reset_failed_shards
    from xaiq.db.session import get_engine, read_session
    from xaiq.scheduler.errors import JobStateError
    from xaiq.scheduler.pins import check_job_dataset
    from xaiq.scheduler.submit import LOCAL_QUEUE

    engine = get_engine()
    reap_local(job)
    with read_session(engine) as session:
        j = get_job(session, job)
        if j.status.value == "interrupted":
            from xaiq.cli.control import resume_job_here

            resume_job_here(job, local=local, device=device, as_json=as_json, fmt=out)
            return
        if j.finished_at is None:
            raise JobStateError(f"job {job} is still {j.status.value}; retry it once it finished")
        queue, spec = j.queue, dict(j.spec)
    check_job_dataset(engine, job, spec)  # rows are by sample index: the samples must agree
    n = reset_failed_shards(engine, job)
    if not as_json:
        info(f"job {job}: {n} shards back to pending")
    if n and (local or queue == LOCAL_QUEUE):
        print_progress(run_local_with_progress(job, device, quiet=as_json), out)
    elif as_json:
        emit_json({"job": job, "reset_shards": n})
