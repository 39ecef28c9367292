"""All CLI output formatting: tables (Rich), CSV and JSON, and one-line errors."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

# Piped or redirected output has no terminal width to respect: don't fold tables at 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=200)
err_console = Console(stderr=True)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.4g}" if abs(value) >= 1e4 or (0 < abs(value) < 1e-3) else f"{value:.3f}"
    return str(value)


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def emit(
    rows: Sequence[Mapping[str, Any]],
    fmt: OutputFormat | str = OutputFormat.table,
    *,
    title: str | None = None,
    columns: Sequence[str] | None = None,
) -> None:
    """Print ``rows`` (dicts with the same keys) as a table, CSV or JSON on stdout."""
    fmt = OutputFormat(fmt)
    cols = list(columns) if columns is not None else (list(rows[0].keys()) if rows else [])
    if fmt is OutputFormat.json:
        sys.stdout.write(json.dumps([dict(r) for r in rows], default=_json_default, indent=2))
        sys.stdout.write("\n")
        return
    if fmt is OutputFormat.csv:
        from xaiq.db.export import csv_text  # text a spreadsheet would run gets a "'"

        writer = csv.writer(sys.stdout)
        writer.writerow([csv_text(str(c)) for c in cols])
        for r in rows:
            writer.writerow(["" if r.get(c) is None else csv_text(r.get(c)) for c in cols])
        return
    # cells, headers and title as Text: data is shown as it is, never read as Rich markup
    # (a dataset folder named ``a[/b]`` or ``[red]x[/red]``)
    table = Table(title=Text(title) if title is not None else None, show_lines=False)
    for c in cols:
        table.add_column(Text(str(c)), overflow="fold")
    for r in rows:
        table.add_row(*(Text(_cell(r.get(c))) for c in cols))
    console.print(table)


def emit_json(obj: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, default=_json_default, indent=2) + "\n")


def info(message: str) -> None:
    """A status line on stderr (keeps stdout clean for --format csv/json); its text is shown
    as it is (paths and names are data, not Rich markup)."""
    err_console.print(Text(str(message)), highlight=False, soft_wrap=True)


def error_line(message: str, *, prefix: bool = True) -> None:
    """The one-line error printed before a non-zero exit (``prefix=False``: a hint line)."""
    first = escape(" ".join(str(message).split("\n")[0].split()) or "error")
    text = f"[bold red]error:[/] {first}" if prefix else first
    err_console.print(text, highlight=False, soft_wrap=True)


def kv_rows(mapping: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in mapping.items()]


def iter_csv(rows: Iterable[Mapping[str, Any]], cols: Sequence[str]) -> Iterable[list[Any]]:
    for r in rows:
        yield [r.get(c) for c in cols]
