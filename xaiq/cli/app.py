"""The root Typer app and the sub-apps; command modules attach to these."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="xaiq",
    help="Explainable-AI experiments on image classifiers, at dataset scale.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Models: list them, train the bundled digits CNNs.")
app.add_typer(models_app, name="models")
