"""Turning Click/Typer usage errors into one ``error:`` line and a ``Try`` hint.

Typer up to 0.1x raised plain ``click`` exceptions; newer Typer vendors its own copy of click
(``typer._click``) whose exception classes are unrelated to ``click``'s. Both are covered
without naming the private module: ``typer.BadParameter`` and ``typer.Exit`` are public in
every supported version and live in whichever click Typer uses, so that module's
``ClickException`` is the root to catch. Plain ``click``'s classes are added in case any code
path raises them directly.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer


def _modules() -> list[Any]:
    mods = [importlib.import_module(typer.BadParameter.__module__)]
    try:
        import click.exceptions as plain
    except ImportError:  # pragma: no cover - typer >= 0.2x does not need click
        return mods
    if plain is not mods[0]:
        mods.append(plain)
    return mods


def _classes(name: str) -> tuple[type[BaseException], ...]:
    return tuple(getattr(m, name) for m in _modules() if isinstance(getattr(m, name, None), type))


CLICK_ERRORS = _classes("ClickException")  # usage errors and FileError
NO_ARGS_HELP = _classes("NoArgsIsHelpError")  # `xaiq` alone (click >= 8.2 and vendored)
EXITS = tuple({typer.Exit, *_classes("Exit")})
ABORTS = tuple({typer.Abort, *_classes("Abort")})

# pydantic's error types (Typer >= 0.2x coerces through pydantic) as short phrases
_PYDANTIC_PHRASES = {
    "int_parsing": "is not an integer",
    "int_from_float": "is not an integer",
    "float_parsing": "is not a number",
    "bool_parsing": "is not true/false",
    "enum": "is not one of the choices",
    "literal_error": "is not one of the choices",
}


def _hint(exc: BaseException) -> str | None:
    """``'--limit'`` or ``'JOB'``: the option or argument a usage error is about."""
    param = getattr(exc, "param", None)
    hint = getattr(exc, "param_hint", None)
    if hint is None and param is not None:
        try:  # click's takes the context, Typer's vendored copy does not
            hint = param.get_error_hint(getattr(exc, "ctx", None))
        except TypeError:
            hint = param.get_error_hint()
    if hint is None:
        return None
    return hint if isinstance(hint, str) else " / ".join(repr(h) for h in hint)


def _bad_value(exc: BaseException, hint: str) -> str | None:
    """The message of a type/choice error coerced by pydantic, naming the value."""
    cause = exc.__cause__
    errors = getattr(cause, "errors", None)
    if not callable(errors):
        return None
    try:
        first = errors()[0]
    except (IndexError, TypeError):
        return None
    value = first.get("input")
    msg = str(first.get("msg", "invalid")).rstrip(".")
    if msg.startswith("Value error, "):  # a validator's own message, naming the value
        return f"invalid value for {hint}: {msg.removeprefix('Value error, ')}"
    phrase = _PYDANTIC_PHRASES.get(first.get("type", ""))
    if phrase is None:
        phrase = f"({msg[:1].lower()}{msg[1:]})"
    if first.get("type") in ("enum", "literal_error"):
        expected = (first.get("ctx") or {}).get("expected")
        if expected:
            phrase = f"is not one of {expected}"
    return f"invalid value for {hint}: {value!r} {phrase}"


def usage_message(exc: BaseException) -> str:
    """One line naming the option or argument and the value, without click's capitals."""
    hint = _hint(exc)
    text = None
    if hint is not None and not type(exc).__name__.startswith("Missing"):
        text = _bad_value(exc, hint)
    if text is None:
        text = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    text = " ".join(text.split()).rstrip(".")
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def command_path(exc: BaseException, root: Any, args: list[str]) -> str:
    """``xaiq submit``: the command a usage error belongs to (for the ``Try`` hint).

    The error's context says it when the parser attached one; otherwise the subcommand names
    are read off ``args`` (the root and the groups take no option with a value)."""
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        return str(ctx.command_path)
    path, command = [str(root.name)], root
    for arg in args:
        if arg.startswith("-"):
            continue
        sub = (getattr(command, "commands", None) or {}).get(arg)
        if sub is None:
            break
        path.append(arg)
        command = sub
    return " ".join(path)
