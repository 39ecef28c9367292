"""Options and arguments shared by the commands: one spelling, one meaning, one metavar.

Use them as annotations; the default goes in the signature (none: required)::

    def status_cmd(job: JobArgument, fmt: FormatOption = OutputFormat.table,
                   as_json: JsonFlag = False) -> None:
        out = output_format(fmt, as_json)
"""

from __future__ import annotations

from typing import Annotated

import typer

from xaiq.cli.output import OutputFormat

MODEL_HELP = (
    "digits-cnn, digits-cnn-weak, a torchvision name (cached weights), "
    "ARCH:state_dict.pt, or torchscript:FILE (code: only with XAIQ_TRUST_TORCHSCRIPT=1; "
    "see `xaiq models`)"
)
DATASET_HELP = "dataset spec: digits, folder:PATH, mnist:ROOT, ... (see `xaiq datasets`)"

FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="output format: table, csv or json")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="short for --format json")]
JobArgument = Annotated[int, typer.Argument(help="job id (see `xaiq list`)", metavar="JOB")]
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
