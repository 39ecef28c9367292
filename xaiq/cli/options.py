"""Options and arguments shared by the commands: one spelling, one meaning, one metavar.

Use them as annotations; the default goes in the signature (none: required)::

    def status_cmd(job: JobArgument, fmt: FormatOption = OutputFormat.table,
                   as_json: JsonFlag = False) -> None:
        out = output_format(fmt, as_json)
"""

from __future__ import annotations

from typing import Annotated

import typer

from xaiq.cli.errors import CliError
from xaiq.cli.output import FORMAT_HELP, OutputFormat

MODEL_HELP = (
    "digits-cnn, digits-cnn-weak, a torchvision name (cached weights), "
    "ARCH:state_dict.pt, or torchscript:FILE (code: only with XAIQ_TRUST_TORCHSCRIPT=1; "
    "see `xaiq models`)"
)
DATASET_HELP = "dataset spec: digits, folder:PATH, mnist:ROOT, ... (see `xaiq datasets`)"

FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help=FORMAT_HELP)]
JsonFlag = Annotated[bool, typer.Option("--json", help="short for --format json")]
JobsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--job",
        "-j",
        metavar="LIST",
        help="job ids or names (`submit --name`), comma-separated or repeated; default: every job",
    ),
]
JobArgument = Annotated[
    int, typer.Argument(help="job id (see `xaiq list`)", metavar="JOB", min=1, max=2**31 - 1)
]
ModelOption = Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP, metavar="MODEL")]
DatasetOption = Annotated[
    str, typer.Option("--dataset", "-d", help=DATASET_HELP, metavar="DATASET")
]
DeviceOption = Annotated[
    str,
    typer.Option("--device", help="cpu, cuda, cuda:N (default: cuda if present)", metavar="DEVICE"),
]


def output_format(fmt: OutputFormat | str, as_json: bool = False) -> OutputFormat:
    """The format asked for: ``--json`` wins over ``--format``."""
    return OutputFormat.json if as_json else OutputFormat(fmt)


def split_list(values: list[str] | None) -> list[str] | None:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (list options accept both spellings)."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def selected_jobs(values: list[str] | None) -> list[int] | None:
    """The job ids a ``--job`` selection names (ids, and names standing for every job of
    that name); None when there is no selection (every job)."""
    items = split_list(values)
    if not items:
        return None
    from xaiq.cli.limits import JOB_ID_MAX

    for item in items:
        if item.isdigit() and not 1 <= int(item) <= JOB_ID_MAX:
            raise CliError(f"--job {item} is not a job id (1..{JOB_ID_MAX})")
        if item.lstrip("-").isdigit() and item.startswith("-"):
            raise CliError(f"--job {item} is not a job id (1..{JOB_ID_MAX})")
    from xaiq.db.errors import NotFoundError
    from xaiq.db.labels import resolve_jobs
    from xaiq.db.session import get_engine

    try:
        return resolve_jobs(get_engine(), items)
    except NotFoundError as exc:  # a name no job has: a bad value of --job (exit 2, hint)
        raise typer.BadParameter(str(exc), param_hint="'--job'") from None


# The attack's search options, spelled the same on `xaiq attack` and `xaiq submit attack`.
# `attack` passes these defaults; `submit` passes None (the spec's defaults, the same values,
# apply), so each help text states the default itself. A test compares them with the library.
ATTACK_DEFAULTS = {
    "mode": "repair",
    "frac": 0.4,
    "sigma": 1.0,
    "clamp": True,
    "preset": "default",
    "max_iters": 10_000,
    "candidates": 1,
    "strategies": "rise-least,central",
    "n_masks": 4000,
    "s": 7,
    "p1": 0.5,
    "fill": 256,
}
_A = ATTACK_DEFAULTS
ModeOption = Annotated[
    str,
    typer.Option(
        "--mode", show_default=False, help=f"repair, targeted or untargeted (default {_A['mode']})"
    ),
]
AttackAllFlag = Annotated[
    bool,
    typer.Option(
        "--all",
        "--attack-all",
        show_default=False,
        help="repair: attack correctly classified samples too",
    ),
]
FracOption = Annotated[
    float,
    typer.Option(
        "--frac",
        show_default=False,
        help=f"pixel budget fraction, in (0, 1] (default {_A['frac']})",
    ),
]
SigmaOption = Annotated[
    float,
    typer.Option(
        "--sigma",
        show_default=False,
        help=f"noise standard deviation, model-input units ({_A['sigma']})",
    ),
]
ClampOption = Annotated[
    bool,
    typer.Option(
        "--clamp/--no-clamp",
        show_default=False,
        help="keep candidates inside the model's input domain (default on; off with --preset seed)",
    ),
]
PresetOption = Annotated[
    str,
    typer.Option(
        "--preset",
        show_default=False,
        help="default, or seed: the source lab's procedure exactly (no clamp, ties by pixel "
        "index, central = its rectangle, a noise stream per strategy; default "
        f"{_A['preset']})",
    ),
]
MaxItersOption = Annotated[
    int,
    typer.Option(
        "--max-iters",
        show_default=False,
        help=f"iterations per strategy (default {_A['max_iters']})",
    ),
]
CandidatesOption = Annotated[
    int,
    typer.Option(
        "--candidates",
        "-k",
        show_default=False,
        help=f"candidates per image per iteration ({_A['candidates']})",
    ),
]
StrategiesOption = Annotated[
    str,
    typer.Option(
        "--strategies",
        show_default=False,
        help="fallback chain, comma-separated: least:METHOD, most:METHOD (any explainer; "
        f"rise-least = least:rise), central, random (default {_A['strategies']})",
    ),
]
CompareFlag = Annotated[
    bool,
    typer.Option(
        "--compare", help="every strategy attacks every sample from the original (no chain)"
    ),
]
NMasksOption = Annotated[
    int,
    typer.Option("--n-masks", show_default=False, help=f"RISE masks N (default {_A['n_masks']})"),
]
SOption = Annotated[
    int,
    typer.Option("--s", show_default=False, help=f"RISE grid cells per side (default {_A['s']})"),
]
P1Option = Annotated[
    float,
    typer.Option(
        "--p1", show_default=False, help=f"RISE cell keep probability (default {_A['p1']})"
    ),
]
