"""README.md, docs/operations.md and docs/faithfulness.md name only commands and options that
exist, and every command line of their code blocks parses as written (types, choices, required
options)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from xaiq.cli import helptext
from xaiq.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = {
    name: (ROOT / name).read_text()
    for name in ("README.md", "docs/operations.md", "docs/faithfulness.md")
}


def _blocks(text: str) -> list[str]:
    """The command lines of the code blocks, continuation lines (``\\``) joined."""
    lines: list[str] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        lines += [ln.strip() for ln in joined.splitlines() if ln.strip().startswith("xaiq ")]
    return lines


def mentioned_commands(text: str) -> list[str]:
    """Every `xaiq ...` in inline code, and every line of a code block starting with xaiq."""
    return sorted(set(re.findall(r"`(xaiq [^`]+)`", text)) | set(_blocks(text)))


def _argv(line: str) -> list[str]:
    words = shlex.split(line.replace("…", ""), comments=True)[1:]
    for stop in ("|", "&", ">", "&&", ";"):  # the shell's part of the line
        if stop in words:
            words = words[: words.index(stop)]
    return words


COMMANDS = sorted({c for text in DOCS.values() for c in mentioned_commands(text)})
BLOCK_LINES = sorted({c for text in DOCS.values() for c in _blocks(text)})


def _root() -> Any:
    root = typer.main.get_command(app)
    root.name = "xaiq"
    helptext.apply(root)
    return root


def _check(line: str) -> None:
    argv = _argv(line)
    command: Any = _root()
    while hasattr(command, "commands") and argv and not argv[0].startswith("-"):
        name = argv.pop(0)
        assert name in command.commands, f"`{line}`: no command {name!r}"
        command = command.commands[name]
    # a group alone (`xaiq submit`) prints its sub-commands and exits 0: it runs as written
    known = {opt for p in command.params for opt in p.opts + p.secondary_opts} | {"--help", "-h"}
    for token in argv:
        if token.startswith("-") and token != "-":
            for option in token.split("=")[0].split("/"):  # `--device/--threads`
                assert option in known, f"`{line}`: unknown option {option}"


def _parse(line: str) -> None:
    """Parse ``line`` as the CLI would (make_context only: nothing runs)."""
    argv = _argv(line)
    root = _root()
    with root.make_context("xaiq", list(argv)) as ctx:
        command, rest, parent = root, argv, ctx
        while hasattr(command, "commands") and rest and rest[0] in command.commands:
            command = command.commands[rest[0]]
            rest = rest[1:]
            parent = command.make_context(command.name, list(rest), parent=parent)


@pytest.mark.parametrize("line", COMMANDS)
def test_every_command_the_docs_name_exists(line: str) -> None:
    _check(line)


@pytest.mark.parametrize("line", BLOCK_LINES)
def test_every_command_line_of_the_docs_parses_as_written(line: str) -> None:
    _parse(line)


def test_the_checker_refuses_a_command_that_does_not_exist() -> None:
    assert "xaiq status JOB" in COMMANDS
    with pytest.raises(AssertionError, match="no command 'run'"):
        _check("xaiq run JOB")
    with pytest.raises(AssertionError, match="unknown option --bogus"):
        _check("xaiq status 1 --bogus")
    with pytest.raises(Exception, match="integer"):
        _parse("xaiq list --status failed --limit frob")
