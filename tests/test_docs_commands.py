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


# --- README.md and docs/operations.md: every command of theirs, not only `xaiq ...` --------

RUN_DOCS = {name: DOCS[name] for name in ("README.md", "docs/operations.md")}
_ENV_WORD = re.compile(r"^[A-Z][A-Z0-9_]*=\S*$")
# tools the docs run that this repository does not provide, and why they are in the docs
EXTERNAL = {"mc": "MinIO's client: creates the bucket an S3 store needs"}


def _code_blocks(text: str, lang: str) -> list[str]:
    return [b for lg, b in re.findall(r"```([a-z]*)\n(.*?)```", text, re.S) if lg == lang]


def _shell_lines(text: str) -> list[str]:
    """Every command line of the bash blocks (continuations joined, comments dropped)."""
    out = []
    for block in _code_blocks(text, "bash"):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def _as_xaiq(line: str) -> str | None:
    """``XAIQ_HOME=demo-out .venv/bin/xaiq list`` -> ``xaiq list`` (env words and the
    script's path dropped); None when the line runs something else."""
    words = line.split()
    while words and _ENV_WORD.match(words[0]):
        words = words[1:]
    if words and (words[0] == "xaiq" or words[0].endswith("/xaiq")):
        return " ".join(["xaiq", *words[1:]])
    return None


def _inline(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


PREFIXED = sorted(
    {
        c
        for text in RUN_DOCS.values()
        for span in _inline(text) + _shell_lines(text)
        if (c := _as_xaiq(span)) is not None and not span.startswith("xaiq ")
    }
)


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9_-]*):", text, re.M))


def _read_somewhere(name: str) -> bool:
    """An environment variable the docs set is read by the package, the build or the tests."""
    places = [ROOT / "Makefile", ROOT / "Dockerfile", ROOT / "docker-compose.yml"]
    for folder in ("xaiq", "bench", "tests"):
        places += [p for p in (ROOT / folder).rglob("*.py") if p.name != Path(__file__).name]
    return any(name in p.read_text(errors="replace") for p in places if p.is_file())


def _check_env(words: list[str], where: str) -> None:
    for word in words:
        name = word.split("=")[0]
        if name.startswith("AWS_"):  # read by boto3 (the S3 client), not by this package
            continue
        assert _read_somewhere(name), f"{where}: {name} is read by nothing in the repository"


def test_every_shell_line_of_the_docs_is_a_command_the_checks_cover() -> None:
    """Each line of a bash block is an xaiq command (parsed above), a make target of the
    Makefile, an export of variables something reads, or a named external tool."""
    targets = _makefile_targets()
    for name, text in RUN_DOCS.items():
        for line in _shell_lines(text):
            where = f"{name}: `{line}`"
            if _as_xaiq(line) is not None:
                _parse(_as_xaiq(line) or "")
                continue
            words = shlex.split(line)
            if words[0] == "make":
                missing = [t for t in words[1:] if "=" not in t and t not in targets]
                assert not missing, f"{where}: no Makefile target {missing}"
            elif words[0] == "export":
                _check_env(words[1:], where)
            else:
                assert words[0] in EXTERNAL, f"{where}: a command no check covers"


@pytest.mark.parametrize("line", PREFIXED)
def test_xaiq_commands_written_with_an_environment_or_a_path_parse(line: str) -> None:
    _check(line)
    if _argv(line):  # `.venv/bin/xaiq` alone prints the help: run below (RUNNABLE)
        _parse(line)


def test_inline_make_targets_modules_and_variables_exist() -> None:
    import importlib.util

    targets = _makefile_targets()
    seen = {"make": 0, "python -m": 0, "env": 0}
    for name, text in RUN_DOCS.items():
        for span in _inline(text):
            words = span.split()
            where = f"{name}: `{span}`"
            if words[0] == "make" and len(words) == 2:
                assert words[1] in targets, f"{where}: no Makefile target {words[1]!r}"
                seen["make"] += 1
            elif words[:2] == ["python", "-m"]:
                module = words[2]
                assert importlib.util.find_spec(module) is not None, f"{where}: no {module}"
                seen["python -m"] += 1
            elif _ENV_WORD.match(words[0]) and len(words) == 1:
                _check_env(words, where)
                seen["env"] += 1
    assert all(seen.values()), seen  # the patterns still find what the docs write


def test_python_module_options_the_docs_use_exist() -> None:
    """``python -m bench --only dataplane`` (operations.md): the option is bench's."""
    import subprocess
    import sys

    for name, text in RUN_DOCS.items():
        for span in _inline(text):
            words = span.split()
            if words[:2] != ["python", "-m"]:
                continue
            options = [w for w in words[3:] if w.startswith("--")]
            if not options:
                continue
            helped = subprocess.run(
                [sys.executable, "-m", words[2], "--help"],
                capture_output=True,
                text=True,
                timeout=120,
                cwd=ROOT,
                check=False,
            )
            assert helped.returncode == 0, helped.stderr
            for option in options:
                assert option in helped.stdout, f"{name}: `{span}`: {option} not an option"


def test_the_python_examples_import_and_call_what_exists() -> None:
    """The README's Python blocks: every import resolves, every ``res.method(...)`` and
    every DataFrame method a comment names exists on :class:`xaiq.results.Results`."""
    import ast
    import importlib

    from xaiq.results import Results

    blocks = [b for text in RUN_DOCS.values() for b in _code_blocks(text, "python")]
    assert len(blocks) >= 2
    for block in blocks:
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    importlib.import_module(alias.name)
        for method in re.findall(r"\bres\.(\w+)\(", block):
            assert callable(getattr(Results, method, None)), f"res.{method}"
        for comment in re.findall(r"#.*", block):
            for method in re.findall(r"also ((?:\.\w+,? ?)+)", comment):
                for name in re.findall(r"\.(\w+)", method):
                    assert callable(getattr(Results, name, None)), f".{name} ({comment})"


# commands of the two files that need no job, no service and no model: run as written
RUNNABLE = (
    "xaiq",
    "xaiq --version",
    "xaiq datasets",
    "xaiq methods",
    "xaiq metrics",
    "xaiq models",
    "xaiq list",
    "xaiq list --tag paper",
    "xaiq db upgrade",
    "xaiq stats",
    "xaiq submit",
    "xaiq submit disagreement --help",
)


def test_the_commands_that_need_no_job_run_as_written(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    written = {*COMMANDS, *BLOCK_LINES, *PREFIXED}
    run_docs = {c for text in RUN_DOCS.values() for c in mentioned_commands(text)}
    run_docs |= set(PREFIXED)
    env = {**os.environ, "XAIQ_HOME": str(tmp_path / "home"), "COLUMNS": "100"}
    for key in ("XAIQ_DB_URL", "XAIQ_BROKER_URL", "XAIQ_ARTIFACTS"):
        env.pop(key, None)
    for line in RUNNABLE:
        assert line in written and line in run_docs, f"`{line}` is no longer in the docs"
        code = "from xaiq.cli.main import run; run()"
        done = subprocess.run(
            [sys.executable, "-c", code, *_argv(line)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        assert done.returncode == 0, f"`{line}`: exit {done.returncode}: {done.stderr[-500:]}"
        assert done.stdout.strip() or done.stderr.strip(), f"`{line}` printed nothing"
