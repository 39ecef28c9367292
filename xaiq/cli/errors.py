"""Errors the CLI maps to one-line messages (no traceback) in ``main()``."""

from __future__ import annotations


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""
