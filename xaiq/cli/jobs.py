"""Job commands: submit, status, list, wait, cancel, retry, worker, workers, scheduler, db.

None of these import torch at module level; ``submit`` validates through the ``xai``
registries and the embedded executor imports the compute only when it runs.
"""

from __future__ import annotations

import json
import math
import os
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from xaiq.cli.app import app
from xaiq.cli.errors import CliError
from xaiq.cli.limits import JOB_ID_MAX
from xaiq.cli.options import (
    AttackAllFlag,
    CandidatesOption,
    ClampOption,
    CompareFlag,
    FormatOption,
    FracOption,
    JsonFlag,
    MaxItersOption,
    ModeOption,
    NMasksOption,
    P1Option,
    SigmaOption,
    SOption,
    StrategiesOption,
    output_format,
)
from xaiq.cli.output import OutputFormat, emit, emit_json, info

db_app = typer.Typer(help="The SQL store: migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


class Kind(StrEnum):
    attribution = "attribution"
    disagreement = "disagreement"
    attack = "attack"


def _split(values: list[str] | None) -> list[str] | None:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (options accept lists both ways)."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _finite_or_text(text: str) -> Any:
    number = float(text)
    return number if math.isfinite(number) else text


def _value(text: str) -> Any:
    """A ``KEY=VALUE`` value as JSON reads it; a number that is not finite (``NaN``,
    ``Infinity``, ``1e400``) stays the text typed, which validation refuses by name."""
    try:
        return json.loads(text, parse_float=_finite_or_text, parse_constant=str)
    except json.JSONDecodeError:
        return text


def _numbers(values: list[str] | None, kind: type, name: str) -> list[Any] | None:
    items = _split(values)
    if items is None:
        return None
    try:
        return [kind(v) for v in items]
    except ValueError:
        raise CliError(f"{name} takes {kind.__name__} values, got {','.join(items)!r}") from None


def _key_values(pairs: list[str] | None, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, val = pair.partition("=")
        if not sep or not key:
            raise CliError(f"{name} expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = _value(val.strip())
    return out


def build_spec(kind: str, options: dict[str, Any], spec_file: Path | None) -> dict[str, Any]:
    """The raw spec from ``--spec FILE`` (if any) overridden by the flags that were given."""
    spec: dict[str, Any] = {}
    if spec_file is not None:
        from xaiq.scheduler.bounds import MAX_SPEC_BYTES

        try:
            with spec_file.open("rb") as f:
                data = f.read(MAX_SPEC_BYTES + 1)
            if len(data) > MAX_SPEC_BYTES:
                raise CliError(f"spec file {spec_file} is larger than {MAX_SPEC_BYTES} bytes")
            spec = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise CliError(f"spec file {spec_file} is not UTF-8 (byte {exc.start})") from None
        except RecursionError:
            raise CliError(f"spec file {spec_file} nests too deep") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise CliError(f"cannot read spec file {spec_file}: {exc}") from None
        if not isinstance(spec, dict):
            raise CliError(f"spec file {spec_file} must hold a JSON object")
    spec["kind"] = kind
    spec.update({k: v for k, v in options.items() if v is not None and v != {}})
    return spec


@app.command("submit")
def submit_cmd(
    kind: Kind = typer.Argument(..., help="attribution, disagreement or attack"),
    dataset: str = typer.Option(
        None, "--dataset", "-d", help="dataset spec (see `xaiq datasets`) (every kind: required)"
    ),
    model: str = typer.Option(
        None, "--model", "-m", help="model name (see `xaiq models`) (every kind: required)"
    ),
    methods: list[str] = typer.Option(
        None,
        "--methods",
        help="explainers, comma-separated (attribution: required; disagreement: 2 or more,"
        " or --from-job)",
    ),
    param: list[str] = typer.Option(
        None,
        "--param",
        "-p",
        help="explainer parameter METHOD.KEY=VALUE, repeatable (attack: the guides' parameters)",
    ),
    superpixels: list[str] = typer.Option(
        None, help="(disagreement) slic and/or grid; a list sweeps (default slic)"
    ),
    n_segments: list[str] = typer.Option(
        None, "--n-segments", help="(disagreement) superpixel counts, a list (default 200)"
    ),
    k_frac: list[str] = typer.Option(
        None, "--k-frac", help="(disagreement) top-k fractions, a list (default 0.05)"
    ),
    from_job: int = typer.Option(
        None,
        "--from-job",
        help="(disagreement) reuse an attribution job's maps",
        min=1,
        max=JOB_ID_MAX,
    ),
    target: str = typer.Option(
        None,
        "--target",
        help="(attribution, disagreement) explain 'pred' (default) or 'label';"
        " (attack) the class to reach (targeted mode)",
    ),
    models: list[str] = typer.Option(
        None, "--models", help="(disagreement) across models: names, comma-separated"
    ),
    faithfulness: bool = typer.Option(
        False, "--faithfulness", help="(disagreement) deletion/insertion AUCs per map"
    ),
    faith_param: list[str] = typer.Option(
        None, "--faith-param", help="(disagreement) step, substrate, order, superpixels, ...=VALUE"
    ),
    sanity: str = typer.Option(
        None, "--sanity", help="(disagreement) model-randomisation check, cascading|independent"
    ),
    sanity_param: list[str] = typer.Option(
        None, "--sanity-param", help="(disagreement) max_layers=N"
    ),
    mode: ModeOption = None,  # type: ignore[assignment]
    attack_all: AttackAllFlag = False,
    frac: FracOption = None,  # type: ignore[assignment]
    sigma: SigmaOption = None,  # type: ignore[assignment]
    clamp: ClampOption = None,  # type: ignore[assignment]
    max_iters: MaxItersOption = None,  # type: ignore[assignment]
    candidates: CandidatesOption = None,  # type: ignore[assignment]
    strategies: StrategiesOption = None,  # type: ignore[assignment]
    compare: CompareFlag = False,
    n_masks: NMasksOption = None,  # type: ignore[assignment]
    s: SOption = None,  # type: ignore[assignment]
    p1: P1Option = None,  # type: ignore[assignment]
    attack_param: list[str] = typer.Option(
        None, "--attack-param", help="(attack) any other search parameter KEY=VALUE (repeatable)"
    ),
    seed: int = typer.Option(None, help="job seed (default 0)"),
    shard_size: int = typer.Option(None, "--shard-size", help="samples per shard (default 64)"),
    batch_size: int = typer.Option(
        None, "--batch-size", help="samples per forward batch (default 32)"
    ),
    limit: int = typer.Option(None, "--limit", help="only the first N samples (default: all)"),
    priority: int = typer.Option(None, "--priority", help="higher runs first (default 0)"),
    queue: str = typer.Option(None, "--queue", help="cpu or gpu (default cpu)"),
    max_attempts: int = typer.Option(None, "--max-attempts", help="attempts per shard (default 3)"),
    spec_file: Path = typer.Option(None, "--spec", help="a JSON spec file; flags override it"),
    local: bool = typer.Option(False, "--local", help="run in-process even with a broker"),
    wait: bool = typer.Option(False, "--wait", help="wait for a distributed job to finish"),
    device: str = typer.Option(None, "--device", help="device for --local runs (cpu, cuda:0)"),
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """Validate a job spec, commit the job and its shards, and run it (in-process by default,
    on the Celery workers when XAIQ_BROKER_URL is set).

    Every kind needs --dataset and --model (or a --spec file that has them); attribution
    needs --methods; disagreement --methods (two or more) or --from-job; --mode to --p1 are
    the attack's options, spelled as on `xaiq attack`. Unset options take the defaults shown."""
    out = output_format(fmt, as_json)
    as_json = out is OutputFormat.json
    from xaiq.scheduler.submit import broker_url, submit

    params: dict[str, dict[str, Any]] = {}
    for key, val in _key_values(param, "--param").items():
        method, sep, name = key.partition(".")
        if not sep:
            raise CliError(f"--param expects METHOD.KEY=VALUE, got {key!r}")
        params.setdefault(method, {})[name] = val
    named = {
        "mode": mode,
        "frac": frac,
        "sigma": sigma,
        "clamp": clamp,
        "max_iters": max_iters,
        "candidates": candidates,
        "strategies": strategies,
        "compare": compare or None,
        "n_masks": n_masks,
        "s": s,
        "p1": p1,
    }
    attack = {k: v for k, v in named.items() if v is not None}
    attack.update(_key_values(attack_param, "--attack-param"))
    if kind is Kind.attack and target is not None:  # the class to reach, as on `xaiq attack`
        attack["target_class"] = (_numbers([target], int, "--target") or [None])[0]
        target = None
    if kind == Kind.attack and params:  # an attack's --param sets its guides' parameters
        attack["guide_params"] = params
        params = {}
    if attack_all:
        attack["only_misclassified"] = False
    options = {
        "dataset": dataset,
        "model": model,
        "methods": _split(methods),
        "params": params,
        "superpixels": _split(superpixels),
        "n_segments": _numbers(n_segments, int, "--n-segments"),
        "k_frac": _numbers(k_frac, float, "--k-frac"),
        "from_job": from_job,
        "target": target,
        "models": _split(models),
        "faithfulness": (_key_values(faith_param, "--faith-param") or True)
        if faithfulness or faith_param
        else None,
        "sanity": {"mode": sanity or "cascading", **_key_values(sanity_param, "--sanity-param")}
        if sanity or sanity_param
        else None,
        "attack": attack,
        "seed": seed,
        "shard_size": shard_size,
        "batch_size": batch_size,
        "limit": limit,
        "priority": priority,
        "queue": queue,
        "max_attempts": max_attempts,
    }
    spec = build_spec(kind.value, options, spec_file)
    run_here = local or broker_url() is None
    done = submit(spec, local=run_here)
    if not as_json:
        where = "in-process" if run_here else f"queue {done.queue}"
        info(f"job {done.job_id}: {done.n_samples} samples in {done.n_shards} shards ({where})")
    if done.scheduler_alive is False:
        info("no live scheduler: start one with `xaiq scheduler` to run this job")
    if run_here:
        result = run_local_with_progress(done.job_id, device, quiet=as_json)
    elif wait:
        result = wait_for_job(done.job_id, timeout=None, quiet=as_json)
    else:
        result = {"job": done.job_id, "status": "pending", "queue": done.queue}
        print_progress(result, out)
        return
    print_progress(result, out)
    exit_unless_succeeded(result)


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
    rate, ETA."""
    out = output_format(fmt, as_json)
    as_json = out is OutputFormat.json
    from xaiq.db.jobs import job_progress
    from xaiq.db.lifecycle import job_errors
    from xaiq.db.session import read_session

    reap_local(job)
    with read_session() as session:
        p = job_progress(session, job)
        first = (
            job_errors(session, job, limit=5)
            if p["samples_failed"] or p["shards"]["failed"]
            else []
        )
    if as_json:
        emit_json({**p, "first_errors": first})
        return
    print_progress(p, out)
    if first and out is OutputFormat.table:
        emit(first, out, title=f"first failures (all: `xaiq errors {job}`)")


LIST_COLUMNS = [
    "job",
    "kind",
    "status",
    "priority",
    "queue",
    "dataset",
    "model",
    "samples",
    "shards_done",
    "created_at",
]


@app.command("list")
def list_cmd(
    status: list[str] = typer.Option(None, "--status", help="only these job statuses"),
    limit: int = typer.Option(50, "--limit", help="newest N jobs"),
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """The newest jobs with their status and progress."""
    out = output_format(fmt, as_json)
    as_json = out is OutputFormat.json
    from xaiq.db.jobs import jobs_list, shard_counts
    from xaiq.db.models import JobStatus
    from xaiq.db.session import read_session

    wanted = _split(status)
    for s in wanted or []:
        if s not in JobStatus.__members__:
            raise CliError(f"unknown job status {s!r}; known: {', '.join(JobStatus.__members__)}")
    reap_local()
    with read_session() as session:
        rows = []
        for job in jobs_list(session, limit, wanted):
            counts = shard_counts(session, job.id)
            total = sum(counts.values())
            rows.append(
                {
                    "job": job.id,
                    "kind": job.kind.value,
                    "status": job.status.value,
                    "priority": job.priority,
                    "queue": job.queue,
                    "dataset": job.dataset,
                    "model": job.model,
                    "samples": job.n_samples,
                    "shards_done": f"{counts['done']}/{total}",
                    "created_at": job.created_at.isoformat(timespec="seconds"),
                }
            )
    if not rows:  # say so (on stderr), naming the store; csv/json still print their header/[]
        from xaiq.db.session import get_engine

        where = get_engine().url.render_as_string(hide_password=True)
        info(f"no jobs in {where}" + (f" with status {', '.join(wanted)}" if wanted else ""))
        if out is OutputFormat.table:
            return
    if as_json:
        emit_json(rows)
    else:
        emit(rows, out, title="jobs", columns=LIST_COLUMNS)


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
    their current batch (their finished batches are kept)."""
    from xaiq.db.jobs import request_cancel
    from xaiq.db.session import get_engine

    reap_local(job)
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
        queue = j.queue
    n = reset_failed_shards(engine, job)
    if not as_json:
        info(f"job {job}: {n} shards back to pending")
    if n and (local or queue == LOCAL_QUEUE):
        print_progress(run_local_with_progress(job, device, quiet=as_json), out)
    elif as_json:
        emit_json({"job": job, "reset_shards": n})


@app.command("worker")
def worker_cmd(
    queues: str = typer.Option("gpu,cpu", "--queues", "-Q", help="queues to consume"),
    concurrency: int = typer.Option(1, "--concurrency", "-c", help="worker processes"),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:N (default: auto)"),
    threads: int = typer.Option(
        None, "--threads", help="torch threads per process (default: cores / concurrency)"
    ),
    name: str = typer.Option(None, "--name", "-n", help="Celery node name"),
    loglevel: str = typer.Option("INFO", "--loglevel", help="Celery log level"),
) -> None:
    """Run a Celery worker (broker: XAIQ_BROKER_URL). One worker per GPU: --device cuda:N."""
    from xaiq.cli.limits import check_worker_options
    from xaiq.scheduler.submit import broker_url, check_broker

    wanted = check_worker_options(queues, concurrency, threads, device)
    url = broker_url()
    if url is None:
        raise CliError("XAIQ_BROKER_URL is not set; workers need a broker")
    check_broker(url)
    os.environ["XAIQ_BROKER_URL"] = url  # normalised: the worker's Celery app reads it
    os.environ["XAIQ_WORKER_QUEUES"] = ",".join(wanted)
    if device:
        os.environ["XAIQ_DEVICE"] = device
    if threads:
        os.environ["XAIQ_TORCH_THREADS"] = str(threads)
    # without --threads each pool process gets (cores / concurrency) torch threads
    os.environ["XAIQ_WORKER_CONCURRENCY"] = str(concurrency)
    from xaiq.db.session import get_engine

    get_engine()  # fail now, with a one-line error, if the store is unreachable
    from xaiq.worker.celery_app import app as celery_app

    argv = ["worker", "-Q", ",".join(wanted), "-c", str(concurrency), "--loglevel", loglevel]
    # -E: task events, so Flower and `celery events` see the workers and their tasks
    argv += ["--pool", "prefork", "-E"]
    if name:
        from celery.utils.nodenames import default_nodename, host_format

        os.environ["XAIQ_WORKER_NAME"] = host_format(default_nodename(name))
        argv += ["-n", name]
    celery_app.worker_main(argv=argv)


@app.command("workers")
def workers_cmd(
    max_age: float = typer.Option(30.0, "--max-age", help="seconds since the last heartbeat"),
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """The live worker processes: queues, device, current shard."""
    out = output_format(fmt, as_json)
    as_json = out is OutputFormat.json
    from xaiq.db.jobs import live_workers
    from xaiq.db.models import utcnow
    from xaiq.db.session import read_session

    with read_session() as session:
        rows = [
            {
                "name": w.name,
                "hostname": w.hostname,
                "pid": w.pid,
                "queues": w.queues,
                "device": w.device,
                "current_shard": w.current_shard_id,
                "seen_seconds_ago": round((utcnow() - w.last_seen).total_seconds(), 1),
            }
            for w in live_workers(session, max_age)
        ]
    if not rows:
        from xaiq.db.session import get_engine

        where = get_engine().url.render_as_string(hide_password=True)
        info(f"no live workers (heartbeat in the last {max_age:g} s) in {where}")
        if out is OutputFormat.table:
            return
    if as_json:
        emit_json(rows)
    else:
        cols = ["name", "hostname", "pid", "queues", "device", "current_shard", "seen_seconds_ago"]
        emit(rows, out, title="live workers", columns=cols)


@app.command("scheduler")
def scheduler_cmd(
    max_in_flight: int = typer.Option(4, "--max-in-flight", help="shards in flight per queue"),
    interval: float = typer.Option(
        1.0, "--interval", help="seconds between ticks (submits and finished shards wake it early)"
    ),
    queues: str = typer.Option("gpu,cpu", "--queues", help="queues to publish to"),
) -> None:
    """Run the scheduler: publishes shards, reaps expired leases, finalises jobs."""
    from xaiq.cli.limits import check_scheduler_options
    from xaiq.db.session import get_engine
    from xaiq.scheduler.loop import Scheduler, celery_publisher
    from xaiq.scheduler.submit import broker_url, check_broker

    wanted = tuple(check_scheduler_options(queues, max_in_flight, interval))
    url = broker_url()
    if url is None:
        raise CliError("XAIQ_BROKER_URL is not set; the scheduler publishes to a broker")
    check_broker(url)
    scheduler = Scheduler(
        get_engine(), celery_publisher(url), max_in_flight=max_in_flight, queues=wanted
    )
    info(f"scheduler {scheduler.owner}: queues {', '.join(wanted)}, {max_in_flight} in flight")
    try:
        scheduler.run(interval, broker_url=url)
    except KeyboardInterrupt:
        info("scheduler stopped")


@db_app.command("upgrade")
def db_upgrade_cmd(
    url: str = typer.Option(None, "--url", help="database URL (default XAIQ_DB_URL)"),
    revision: str = typer.Option("head", "--revision", help="target revision"),
) -> None:
    """Apply the Alembic migrations (PostgreSQL or SQLite)."""
    from xaiq.db.migrations import current_revision
    from xaiq.db.session import get_engine, redact_url, upgrade

    engine = get_engine(url, migrate=False)
    upgrade(engine, revision)
    info(
        f"{redact_url(url or engine.url.render_as_string(hide_password=False))}: "
        f"schema at revision {current_revision(engine)}"
    )
