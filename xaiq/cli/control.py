"""Job control beyond submit: ``resume`` an interrupted (or orphaned, cancelled, failed) job
from its committed rows, and list what failed with ``errors``."""

from __future__ import annotations

import typer

from xaiq.cli.app import app
from xaiq.cli.limits import JOB_ID_MAX
from xaiq.cli.options import FormatOption, JsonFlag, output_format
from xaiq.cli.output import OutputFormat, emit, emit_json, info


def resume_job_here(
    job: int,
    *,
    local: bool,
    device: str | None,
    as_json: bool,
    fmt: OutputFormat = OutputFormat.table,
) -> None:
    """Resume ``job``: in-process when it is a local job without a broker (or ``local``),
    else on the workers through the scheduler."""
    out = output_format(fmt, as_json)
    as_json = out is OutputFormat.json
    from xaiq.cli.jobs import exit_unless_succeeded, print_progress, reap_local, wait_for_job
    from xaiq.cli.progress import run_local_with_progress
    from xaiq.db.jobs import get_job
    from xaiq.db.lifecycle import LOCAL_QUEUE, resume_job
    from xaiq.db.session import get_engine, read_session
    from xaiq.scheduler.errors import JobStateError
    from xaiq.scheduler.pins import check_job_dataset
    from xaiq.scheduler.submit import broker_url, check_broker

    engine = get_engine()
    reap_local(job)
    with read_session(engine) as session:
        j = get_job(session, job)
        status, queue, spec_queue = j.status.value, j.queue, str(j.spec.get("queue", "cpu"))
        spec = dict(j.spec)
    if status == "succeeded":
        raise JobStateError(f"job {job} succeeded; there is nothing to resume")
    if status in ("pending", "running") and queue != LOCAL_QUEUE:
        raise JobStateError(f"job {job} is {status} on the workers; `xaiq wait {job}` follows it")
    check_job_dataset(engine, job, spec)  # rows are by sample index: the samples must agree
    url = broker_url()
    here = local or url is None
    if not here:
        check_broker(url)  # type: ignore[arg-type]
    n = resume_job(engine, job, queue=LOCAL_QUEUE if here else spec_queue)
    if not as_json:
        where = "in-process" if here else f"on queue {spec_queue}"
        info(f"job {job}: resuming {n} unfinished shards {where}")
    if here:
        result = run_local_with_progress(job, device, quiet=as_json)
    else:
        from xaiq.broker.wake import notify

        notify(url)
        result = wait_for_job(job, timeout=None, quiet=as_json)
    print_progress(result, out)
    exit_unless_succeeded(result)


@app.command("resume")
def resume_cmd(
    job: int = typer.Argument(..., help="job id", min=1, max=JOB_ID_MAX),
    local: bool = typer.Option(False, "--local", help="run in-process even with a broker"),
    device: str = typer.Option(None, "--device", help="device for in-process runs"),
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """Continue an interrupted job (Ctrl-C, a killed process) from its committed rows; also
    re-runs the failed and cancelled shards of a finished job. In-process without a broker
    (or with --local), else on the workers. Every row is written once. Refused (exit 2) when
    the dataset no longer holds the samples the job was planned on (a sample added, removed
    or modified): restore it, or submit a new job."""
    from xaiq.db.jobs import job_progress
    from xaiq.db.session import read_session

    resume_job_here(job, local=local, device=device, as_json=as_json, fmt=fmt)
    with read_session() as session:
        if job_progress(session, job)["status"] != "succeeded":
            raise typer.Exit(1)


@app.command("errors")
def errors_cmd(
    job: int = typer.Argument(..., help="job id", min=1, max=JOB_ID_MAX),
    limit: int = typer.Option(None, "--limit", help="only the first N"),
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """What failed in a job: failed samples (stage and message) and failed shards."""
    from xaiq.db.lifecycle import job_errors

    fmt = output_format(fmt, as_json)
    from xaiq.db.session import read_session

    with read_session() as session:
        rows = job_errors(session, job, limit)
    if fmt is OutputFormat.json:
        emit_json(rows)
        return
    emit(
        rows,
        fmt,
        title=f"failures of job {job}",
        columns=["sample_index", "key", "stage", "message"],
    )
