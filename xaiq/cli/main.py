"""Entry point: registers every command module and maps every error to one line.

``main`` drives the Click command itself (``make_context`` + ``invoke``) instead of calling
the Typer app, so that every outcome reaches it as an exception whatever Typer/Click version
is installed: usage errors (exit 2, ``error:`` line + ``Try`` hint), ``typer.Exit`` (its code),
Ctrl-C (exit 130, one line), the store or broker failing (exit 3, one line:
:mod:`xaiq.cli.failures`) and the other domain errors of every layer (exit 2, one line).
``xaiq`` alone, like ``xaiq stats`` or ``xaiq db`` alone, prints the help on stdout and exits 0:
asking a tool what it can do is not a mistake (pip, docker and cargo do the same).
"""

from __future__ import annotations

import contextlib
import sys

import typer

# importing a command module registers its commands on the app
from xaiq.cli import (  # noqa: F401
    attack_cmd,
    catalog,
    control,
    faith,
    helptext,
    jobs,
    onefile,
    processes,
    query,
    serve_cmd,
    services,
    submit,
)
from xaiq.cli.app import app
from xaiq.cli.errors import CliError
from xaiq.cli.failures import STORE_EXIT, file_message, store_errors, store_message
from xaiq.cli.output import error_line
from xaiq.cli.usage import ABORTS, CLICK_ERRORS, EXITS, NO_ARGS_HELP, command_path, usage_message

PROG = "xaiq"


def _known_errors() -> tuple[type[BaseException], ...]:
    from xaiq.xai.errors import XaiError

    roots: list[type[BaseException]] = [CliError, XaiError]
    for mod, name in (("xaiq.db.errors", "DbError"), ("xaiq.scheduler.errors", "SchedulerError")):
        with contextlib.suppress(ImportError, AttributeError):
            roots.append(getattr(__import__(mod, fromlist=[name]), name))
    return tuple(roots)


def _show_help(exc: BaseException) -> int:
    # the error's message is the help: plain Click formats it into the message, Typer's
    # Rich help prints it while the error is built and leaves the message empty (printing
    # ``ctx.get_help()`` again here showed it twice)
    text = exc.format_message() if hasattr(exc, "format_message") else ""
    if text.strip():
        sys.stdout.write(text.rstrip("\n") + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    command = typer.main.get_command(app)
    command.name = PROG
    helptext.apply(command)
    try:
        with command.make_context(PROG, args) as ctx:
            command.invoke(ctx)
    except EXITS as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except NO_ARGS_HELP as exc:
        return _show_help(exc)
    except CLICK_ERRORS as exc:
        error_line(usage_message(exc))
        error_line(f"Try '{command_path(exc, command, args)} --help' for help.", prefix=False)
        return 2
    except ABORTS:
        error_line("aborted")
        return 130
    except KeyboardInterrupt:
        error_line("interrupted")
        return 130
    except store_errors() as exc:  # the store or broker failed: exit 3
        error_line(store_message(exc))
        return STORE_EXIT
    except _known_errors() as exc:
        error_line(str(exc))
        return 2
    except OSError as exc:  # a path given on the command line that cannot be used: exit 2
        error_line(file_message(exc))
        return 2
    return 0


def run() -> None:
    """Console-script entry: exit with :func:`main`'s code."""
    sys.exit(main())


if __name__ == "__main__":
    run()
