"""The root Typer app and the sub-apps; command modules attach to these."""

from __future__ import annotations

import typer

# `-h` and `--help` on every command: the setting is inherited by every sub-context
CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="xaiq",
    help="Explainable-AI experiments on image classifiers, at dataset scale.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT,
)
models_app = typer.Typer(help="Models: list them, train the bundled digits CNNs.")
app.add_typer(models_app, name="models")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("xaiq")
        except PackageNotFoundError:  # a checkout on PYTHONPATH, not installed
            from xaiq import __version__ as number
        typer.echo(f"xaiq {number}")
        raise typer.Exit(0)


@app.callback()
def root(
    show_version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_version, is_eager=True
    ),
) -> None:
    """Explainable-AI experiments on image classifiers, at dataset scale."""
