"""``xaiq submit KIND``: one sub-command per job kind, each with only its own options.

The flags become a spec through the kind's builder (:mod:`xaiq.scheduler.kinds`); this module
only declares the options and runs the job (in-process by default, on the workers when
XAIQ_BROKER_URL is set). ``tests/jobs/test_kinds.py`` checks that the sub-commands are the
registered kinds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from xaiq.cli.app import app
from xaiq.cli.jobs import (
    exit_unless_succeeded,
    print_progress,
    wait_for_job,
)
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
    PresetOption,
    SigmaOption,
    SOption,
    StrategiesOption,
    output_format,
    split_list,
)
from xaiq.cli.output import OutputFormat, info

submit_app = typer.Typer(
    help="Validate a job, commit it with its shards and run it (in-process by default, on the"
    " Celery workers when XAIQ_BROKER_URL is set). One sub-command per job kind.",
    no_args_is_help=True,
)
app.add_typer(submit_app, name="submit")

# --- the options every kind takes ----------------------------------------------------------

Dataset = Annotated[
    str | None,
    typer.Option(
        "--dataset", "-d", help="dataset spec, see `xaiq datasets` (required unless in --spec)"
    ),
]
Model = Annotated[
    str | None,
    typer.Option("--model", "-m", help="model name, see `xaiq models` (required unless in --spec)"),
]
Methods = Annotated[list[str] | None, typer.Option("--methods", help="explainers, comma-separated")]
Param = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        metavar="METHOD.KEY=VALUE",
        help="explainer parameter (repeatable)",
    ),
]
Seed = Annotated[int | None, typer.Option("--seed", help="job seed (default 0)")]
ShardSize = Annotated[
    int | None, typer.Option("--shard-size", help="samples per shard (default 64)")
]
BatchSize = Annotated[
    int | None, typer.Option("--batch-size", help="samples per forward batch (default 32)")
]
Limit = Annotated[
    int | None, typer.Option("--limit", help="only the first N samples (default: all)")
]
Priority = Annotated[int | None, typer.Option("--priority", help="higher runs first (default 0)")]
Queue = Annotated[str | None, typer.Option("--queue", help="cpu or gpu (default cpu)")]
MaxAttempts = Annotated[
    int | None, typer.Option("--max-attempts", help="attempts per shard (default 3)")
]
SpecFile = Annotated[
    Path | None, typer.Option("--spec", help="a JSON spec file; the flags given override it")
]
Name = Annotated[
    str | None, typer.Option("--name", help="a name for the job (`--job NAME` selects it)")
]
Tag = Annotated[
    list[str] | None,
    typer.Option("--tag", "-t", help="a tag (repeatable, or comma-separated); `xaiq list --tag`"),
]
Local = Annotated[bool, typer.Option("--local", help="run in-process even with a broker")]
Wait = Annotated[bool, typer.Option("--wait", help="wait for a distributed job to finish")]
Device = Annotated[
    str | None, typer.Option("--device", help="device for in-process runs (cpu, cuda:0)")
]
Recompute = Annotated[
    bool,
    typer.Option("--recompute", help="compute every map afresh (default: reuse stored maps)"),
]
MapDtype = Annotated[
    str | None,
    typer.Option("--map-dtype", help="storage dtype of maps: float32 (default) or float16"),
]
ExplainTarget = Annotated[
    str | None, typer.Option("--target", help="explain 'pred' (default) or 'label'")
]


def _planned(done: Any) -> str:
    return f"job {done.job_id}: {done.n_samples} samples in {done.n_shards} shards"


def submit_kind(kind: str, flags: dict[str, Any]) -> None:
    """Build the spec of ``kind`` from ``flags`` (the sub-command's own ``locals()``) with the
    kind's builder (:mod:`xaiq.scheduler.kinds`) and :func:`run_submission` it with the
    options every sub-command shares."""
    from xaiq.scheduler.kinds import KINDS

    spec = KINDS[kind].build(flags, flags["spec_file"])
    run_submission(
        spec,
        name=flags["name"],
        tags=flags["tag"],
        local=flags["local"],
        wait=flags["wait"],
        device=flags["device"],
        fmt=output_format(flags["fmt"], flags["as_json"]),
    )


def run_submission(
    spec: dict[str, Any],
    *,
    name: str | None,
    tags: list[str] | None,
    local: bool,
    wait: bool,
    device: str | None,
    fmt: OutputFormat,
) -> None:
    """Submit ``spec`` and run it here, wait for it, or leave it to the workers."""
    from xaiq.scheduler.submit import broker_url, submit

    as_json = fmt is OutputFormat.json
    labels = {"name": name, "tags": split_list(tags) or []}
    if local or broker_url() is None:
        from xaiq.cli.progress import run_local_here, stop_requests

        # Ctrl-C/SIGTERM from before the job row is committed leave a resumable job (exit
        # 130), never a pending one killed by the default handler (exit 143)
        with stop_requests():
            done = submit(spec, local=True, **labels)
            if not as_json:
                info(f"{_planned(done)} (in-process)")
            result = run_local_here(done.job_id, device, quiet=as_json)
        print_progress(result, fmt)
        exit_unless_succeeded(result)
        return
    done = submit(spec, local=False, **labels)
    if not as_json:
        info(f"{_planned(done)} (queue {done.queue})")
    if done.scheduler_alive is False:
        info("no live scheduler: start one with `xaiq scheduler` to run this job")
    if wait:
        result = wait_for_job(done.job_id, timeout=None, quiet=as_json)
    else:
        print_progress({"job": done.job_id, "status": "pending", "queue": done.queue}, fmt)
        return
    print_progress(result, fmt)
    exit_unless_succeeded(result)


@submit_app.command("attribution")
def submit_attribution(
    dataset: Dataset = None,
    model: Model = None,
    methods: Methods = None,
    param: Param = None,
    target: ExplainTarget = None,
    seed: Seed = None,
    shard_size: ShardSize = None,
    batch_size: BatchSize = None,
    limit: Limit = None,
    priority: Priority = None,
    queue: Queue = None,
    max_attempts: MaxAttempts = None,
    recompute: Recompute = False,
    map_dtype: MapDtype = None,
    spec_file: SpecFile = None,
    name: Name = None,
    tag: Tag = None,
    local: Local = False,
    wait: Wait = False,
    device: Device = None,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """Saliency maps of every sample for each method (stored as artifacts, with summary
    rows); needs --dataset, --model and --methods (or a --spec file that has them)."""
    submit_kind("attribution", dict(locals()))


@submit_app.command("disagreement")
def submit_disagreement(
    dataset: Dataset = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="model name, see `xaiq models` (required unless --models or --spec)",
        ),
    ] = None,
    methods: Annotated[
        list[str] | None,
        typer.Option("--methods", help="explainers, comma-separated: two or more (or --from-job)"),
    ] = None,
    param: Param = None,
    superpixels: Annotated[
        list[str] | None,
        typer.Option("--superpixels", help="slic and/or grid; a list sweeps (default slic)"),
    ] = None,
    n_segments: Annotated[
        list[str] | None,
        typer.Option("--n-segments", help="superpixel counts, a list (default 200)"),
    ] = None,
    k_frac: Annotated[
        list[str] | None, typer.Option("--k-frac", help="top-k fractions, a list (default 0.05)")
    ] = None,
    from_job: Annotated[
        int | None,
        typer.Option("--from-job", help="reuse an attribution job's maps", min=1, max=JOB_ID_MAX),
    ] = None,
    target: ExplainTarget = None,
    models: Annotated[
        list[str] | None,
        typer.Option("--models", help="across models: names, comma-separated (replaces --model)"),
    ] = None,
    faithfulness: Annotated[
        bool, typer.Option("--faithfulness", help="deletion/insertion AUCs per map")
    ] = False,
    faith_param: Annotated[
        list[str] | None,
        typer.Option(
            "--faith-param",
            metavar="KEY=VALUE",
            help="step, substrate, order, superpixels, ... (repeatable)",
        ),
    ] = None,
    sanity: Annotated[
        str | None,
        typer.Option("--sanity", help="model-randomisation check, cascading|independent"),
    ] = None,
    sanity_param: Annotated[
        list[str] | None,
        typer.Option("--sanity-param", metavar="KEY=VALUE", help="max_layers=N (repeatable)"),
    ] = None,
    seed: Seed = None,
    shard_size: ShardSize = None,
    batch_size: BatchSize = None,
    limit: Limit = None,
    priority: Priority = None,
    queue: Queue = None,
    max_attempts: MaxAttempts = None,
    recompute: Recompute = False,
    map_dtype: MapDtype = None,
    spec_file: SpecFile = None,
    name: Name = None,
    tag: Tag = None,
    local: Local = False,
    wait: Wait = False,
    device: Device = None,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """For every pair of methods and every sample, how much the two maps disagree over
    superpixels (the metrics of `xaiq metrics`); needs --dataset, --model (or --models) and
    --methods (or --from-job), from the flags or a --spec file."""
    submit_kind("disagreement", dict(locals()))


@submit_app.command("attack")
def submit_attack(
    dataset: Dataset = None,
    model: Model = None,
    mode: ModeOption = None,  # type: ignore[assignment]
    target: Annotated[
        str | None, typer.Option("--target", help="the class to reach (targeted mode)")
    ] = None,
    attack_all: AttackAllFlag = False,
    frac: FracOption = None,  # type: ignore[assignment]
    sigma: SigmaOption = None,  # type: ignore[assignment]
    clamp: ClampOption = None,  # type: ignore[assignment]
    preset: PresetOption = None,  # type: ignore[assignment]
    max_iters: MaxItersOption = None,  # type: ignore[assignment]
    candidates: CandidatesOption = None,  # type: ignore[assignment]
    strategies: StrategiesOption = None,  # type: ignore[assignment]
    compare: CompareFlag = False,
    n_masks: NMasksOption = None,  # type: ignore[assignment]
    s: SOption = None,  # type: ignore[assignment]
    p1: P1Option = None,  # type: ignore[assignment]
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="METHOD.KEY=VALUE",
            help="a guide's parameter (repeatable)",
        ),
    ] = None,
    attack_param: Annotated[
        list[str] | None,
        typer.Option(
            "--attack-param",
            metavar="KEY=VALUE",
            help="any other search parameter (repeatable)",
        ),
    ] = None,
    seed: Seed = None,
    shard_size: ShardSize = None,
    batch_size: BatchSize = None,
    limit: Limit = None,
    priority: Priority = None,
    queue: Queue = None,
    max_attempts: MaxAttempts = None,
    recompute: Recompute = False,
    spec_file: SpecFile = None,
    name: Name = None,
    tag: Tag = None,
    local: Local = False,
    wait: Wait = False,
    device: Device = None,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """The RISE-guided attack on every sample (by default it repairs the misclassified
    ones); needs --dataset and --model. The search's options are spelled as on
    `xaiq attack`; unset ones take the defaults shown."""
    submit_kind("attack", dict(locals()))
