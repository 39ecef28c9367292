"""Entry point: registers every command module and maps known errors to one line."""

from __future__ import annotations

import contextlib
import sys

import click

# importing a command module registers its commands on the app
from xaiq.cli import attack_cmd, catalog, control, jobs, onefile, query  # noqa: F401
from xaiq.cli.app import app
from xaiq.cli.errors import CliError
from xaiq.cli.output import error_line


def _known_errors() -> tuple[type[BaseException], ...]:
    from xaiq.xai.errors import XaiError

    roots: list[type[BaseException]] = [CliError, XaiError]
    for mod, name in (("xaiq.db.errors", "DbError"), ("xaiq.scheduler.errors", "SchedulerError")):
        with contextlib.suppress(ImportError, AttributeError):
            roots.append(getattr(__import__(mod, fromlist=[name]), name))
    return tuple(roots)


def main(argv: list[str] | None = None) -> int:
    try:
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int):  # typer.Exit(n) comes back as a return value here
            return code
    except click.exceptions.Abort:
        error_line("aborted")
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except _known_errors() as exc:
        error_line(str(exc))
        return 2
    except KeyboardInterrupt:
        error_line("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script entry: exit with :func:`main`'s code."""
    sys.exit(main())
