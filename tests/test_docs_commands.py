"""docs/operations.md names only commands and options that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from xaiq.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "operations.md").read_text()


def mentioned_commands(text: str) -> list[str]:
    """Every `xaiq ...` in inline code, and every line of a code block starting with xaiq."""
    found = re.findall(r"`(xaiq [^`]+)`", text)
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        found += [line.strip() for line in block.splitlines() if line.strip().startswith("xaiq ")]
    return sorted(set(found))


COMMANDS = mentioned_commands(DOC)


def _check(line: str) -> None:
    argv = shlex.split(line.replace("…", ""))[1:]
    command: Any = typer.main.get_command(app)
    while hasattr(command, "commands") and argv and not argv[0].startswith("-"):
        name = argv.pop(0)
        assert name in command.commands, f"`{line}`: no command {name!r}"
        command = command.commands[name]
    assert not hasattr(command, "commands"), f"`{line}` names a group, not a command"
    known = {opt for p in command.params for opt in p.opts + p.secondary_opts}
    for token in argv:
        if token.startswith("-"):
            for option in token.split("=")[0].split("/"):  # `--device/--threads`
                assert option in known, f"`{line}`: unknown option {option}"


@pytest.mark.parametrize("line", COMMANDS)
def test_every_command_the_operations_page_names_exists(line: str) -> None:
    _check(line)


def test_the_checker_refuses_a_command_that_does_not_exist() -> None:
    assert "xaiq status JOB" in COMMANDS
    with pytest.raises(AssertionError, match="no command 'run'"):
        _check("xaiq run JOB")
    with pytest.raises(AssertionError, match="unknown option --bogus"):
        _check("xaiq status 1 --bogus")
