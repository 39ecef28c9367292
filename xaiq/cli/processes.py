"""The long-running processes and their checks: ``worker``, ``workers``, ``scheduler``,
``health`` and ``db upgrade`` (operators' commands; docs/operations.md)."""

from __future__ import annotations

import os

import typer

from xaiq.cli.app import app
from xaiq.cli.errors import CliError
from xaiq.cli.options import FormatOption, JsonFlag, output_format
from xaiq.cli.output import OutputFormat, emit, emit_json, info
from xaiq.cli.services import refuse_example_passwords

db_app = typer.Typer(help="The SQL store: migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


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
    refuse_example_passwords()
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
    refuse_example_passwords()
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

    refuse_example_passwords()
    engine = get_engine(url, migrate=False)
    upgrade(engine, revision)
    info(
        f"{redact_url(url or engine.url.render_as_string(hide_password=False))}: "
        f"schema at revision {current_revision(engine)}"
    )


@app.command("health")
def health_cmd(
    component: str = typer.Argument(..., help="scheduler or worker"),
    max_age: float = typer.Option(30.0, "--max-age", help="seconds since the last heartbeat"),
) -> None:
    """Exit 0 when the component has a fresh heartbeat in the store (the scheduler; a worker
    process on this host), else 1: for container healthchecks."""
    import socket

    from xaiq.cli.errors import CliError
    from xaiq.db.jobs import last_beat, live_workers
    from xaiq.db.models import utcnow
    from xaiq.db.session import read_session
    from xaiq.scheduler.submit import SCHEDULER_COMPONENT

    if component not in ("scheduler", "worker"):
        raise CliError(f"health takes scheduler or worker, got {component!r}")
    with read_session() as session:
        if component == "scheduler":
            beat = last_beat(session, SCHEDULER_COMPONENT)
            age = None if beat is None else (utcnow() - beat.last_seen).total_seconds()
            ok = age is not None and age <= max_age
        else:
            host = socket.gethostname()
            ok = any(w.hostname == host for w in live_workers(session, max_age))
    if not ok:
        info(f"{component}: no heartbeat in the last {max_age:g} s")
        raise typer.Exit(1)
