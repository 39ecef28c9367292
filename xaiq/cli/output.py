"""All CLI output formatting: tables that fit the terminal, CSV, JSON, Markdown and LaTeX,
status lines and one-line errors.

Tables are laid out here, not by Rich, so that a number is never split across lines:

1. the full table, text cells wrapped at spaces, after ``_`` and ``,`` (never inside a
   number), when its narrowest form fits the terminal;
2. else a compact one: statistics rows (``metric``, ``mean``, ``ci_low``, ``ci_high``) pivoted
   to one row per group with one ``mean [low, high]`` cell per metric; the columns a command
   marks optional are left out, one at a time;
3. else a vertical layout: one block of ``column  value`` lines per row.

The width is the terminal's, or ``COLUMNS`` when set (also when piped, so tests and scripts can
ask for a width); piped output without ``COLUMNS`` is never narrowed. Every float column is
rounded by one rule (3 decimals, or 3 significant digits for the whole column when one of
its values is below 0.001 or above 100,000); CSV and JSON keep full precision.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

# Piped or redirected output has no terminal width to respect: don't fold at 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=200)
err_console = Console(stderr=True)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"
    latex = "latex"


FORMAT_HELP = "output format: table, csv, json, markdown or latex (a paper's table)"
NULL = "NULL"


# --- numbers -----------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def column_formatter(values: Iterable[Any]) -> Callable[[Any], str]:
    """One rounding rule for a column: 3 decimals, or 3 significant digits for every value
    when one finite non-zero value is below 0.001 or at least 100,000 in magnitude."""
    floats = [v for v in values if isinstance(v, float) and math.isfinite(v) and v != 0.0]
    scientific = any(abs(v) < 1e-3 or abs(v) >= 1e5 for v in floats)

    def fmt(value: Any) -> str:
        if value is None:
            return NULL
        if isinstance(value, float):
            if math.isnan(value):
                return "NaN"
            if math.isinf(value):
                return "inf" if value > 0 else "-inf"
            return f"{value:.3g}" if scientific else f"{value:.3f}"
        return str(value)

    return fmt


def format_cells(
    rows: Sequence[Mapping[str, Any]], cols: Sequence[str]
) -> tuple[list[list[str]], list[bool]]:
    """The rows as strings (one rounding rule per column) and which columns are numeric."""
    formatters = [column_formatter(r.get(c) for r in rows) for c in cols]
    numeric = [
        any(_is_number(r.get(c)) for r in rows)
        and all(r.get(c) is None or _is_number(r.get(c)) for r in rows)
        for c in cols
    ]
    cells = [[f(r.get(c)) for f, c in zip(formatters, cols, strict=True)] for r in rows]
    return cells, numeric


# --- wrapping ----------------------------------------------------------------------------

_BREAK_AFTER = re.compile(r"(?<=[_,])")
_WORDS = re.compile(r"\[[^\]\n]*\]|[^\s\[]+(?:\[[^\]\n]*\])?|\S+")


def _words(text: str) -> list[str]:
    """Words split at spaces; an interval ``[low, high]`` is one word."""
    return _WORDS.findall(text)


def _pieces(word: str, numeric: bool) -> list[str]:
    """The unbreakable pieces of a word: a number is one piece; text breaks after _ and ,."""
    if numeric or not word or word.startswith("["):
        return [word]
    return [p for p in _BREAK_AFTER.split(word) if p]


def min_width(text: str, numeric: bool = False) -> int:
    """The narrowest a cell can be without breaking a number or a word."""
    if numeric:
        return len(text)
    return max((len(p) for word in _words(text) for p in _pieces(word, False)), default=0)


def natural_width(text: str) -> int:
    return max((len(line) for line in text.split("\n")), default=0)


def wrap(text: str, width: int, numeric: bool = False) -> list[str]:
    """``text`` in lines of at most ``width`` (wider only when one piece is wider)."""
    if numeric or len(text) <= width and "\n" not in text:
        return [text]
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in _words(paragraph):
            candidate = f"{line} {word}" if line else word
            if len(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
                line = ""
            for piece in _pieces(word, False):
                if line and len(line) + len(piece) > width:
                    lines.append(line)
                    line = ""
                line += piece
        lines.append(line)
    return lines


# --- table layouts -----------------------------------------------------------------------


def terminal_width() -> int | None:
    """``COLUMNS`` when set, else the terminal's width, else None (piped: no limit)."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _overhead(n_cols: int) -> int:
    return 3 * n_cols + 1  # Rich's boxed table: a border and one space each side per column


def fit_widths(
    headers: Sequence[str], cells: Sequence[Sequence[str]], numeric: Sequence[bool], avail: int
) -> list[int] | None:
    """Column widths that fit ``avail`` characters, or None when the narrowest do not."""
    n = len(headers)
    natural = [
        max([natural_width(headers[i]), *(natural_width(r[i]) for r in cells)]) for i in range(n)
    ]
    least = [
        max([min_width(headers[i]), *(min_width(r[i], numeric[i]) for r in cells)])
        for i in range(n)
    ]
    budget = avail - _overhead(n)
    if sum(least) > budget:
        return None
    widths = list(natural)
    excess = sum(widths) - budget
    while excess > 0:  # shrink the column with the most room to spare, one character a time
        i = max(range(n), key=lambda j: widths[j] - least[j])
        widths[i] -= 1
        excess -= 1
    return widths


def _render_table(
    title: str | None,
    headers: Sequence[str],
    cells: Sequence[Sequence[str]],
    numeric: Sequence[bool],
    widths: Sequence[int],
) -> None:
    # cells, headers and title as Text: data is shown as it is, never read as Rich markup
    table = Table(title=Text(title) if title is not None else None)
    for header, width, num in zip(headers, widths, numeric, strict=True):
        table.add_column(
            Text("\n".join(wrap(header, width))),
            width=width,
            no_wrap=True,
            overflow="ignore",
            justify="right" if num else "left",
        )
    for row in cells:
        table.add_row(
            *(
                Text("\n".join(wrap(c, w, num)))
                for c, w, num in zip(row, widths, numeric, strict=True)
            )
        )
    total = sum(widths) + _overhead(len(widths))
    Console(width=max(total, 20), soft_wrap=False).print(table)


def _render_vertical(
    title: str | None, headers: Sequence[str], cells: Sequence[Sequence[str]], avail: int
) -> None:
    key_width = max((len(h) for h in headers), default=0)
    value_width = max(avail - key_width - 2, 12)
    lines: list[str] = []
    if title:
        lines += wrap(title, max(avail, 20))
    for row in cells:
        lines.append("")
        for header, value in zip(headers, row, strict=True):
            wrapped = wrap(value, value_width, _looks_numeric(value))
            lines.append(f"{header:<{key_width}}  {wrapped[0]}")
            lines += [f"{'':<{key_width}}  {more}" for more in wrapped[1:]]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- the compact (pivoted) view of statistics rows ----------------------------------------

_STATS = ("metric", "mean", "ci_low", "ci_high")


def interval_cell(mean: Any, low: Any, high: Any, fmt: Callable[[Any], str]) -> str:
    """``mean [low, high]``, or the mean alone when there is no interval."""
    if mean is None:
        return NULL
    if low is None or high is None:
        return fmt(mean)
    return f"{fmt(mean)} [{fmt(low)}, {fmt(high)}]"


def pivot_stats(
    rows: Sequence[Mapping[str, Any]], cols: Sequence[str]
) -> tuple[list[dict[str, Any]], list[str]] | None:
    """Statistics rows (one per group and metric) as one row per group with a
    ``mean [low, high]`` cell per metric and the group's largest n; None when ``rows`` are
    not statistics rows."""
    if not all(c in cols for c in _STATS) or not rows:
        return None
    keys = list(cols[: list(cols).index("metric")])
    fmt = column_formatter(
        v for r in rows for v in (r.get("mean"), r.get("ci_low"), r.get("ci_high"))
    )
    metrics: list[str] = []
    out: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        group = out.setdefault(tuple(r.get(k) for k in keys), {k: r.get(k) for k in keys})
        if "n" in cols:
            n = (r.get("n") or 0) + (r.get("nulls") or 0)
            group["n"] = max(group.get("n", 0), n)
        metric = str(r["metric"])
        if metric not in metrics:
            metrics.append(metric)
        group[metric] = interval_cell(r.get("mean"), r.get("ci_low"), r.get("ci_high"), fmt)
    columns = [*keys, *(["n"] if "n" in cols else []), *metrics]
    return list(out.values()), columns


@dataclass
class _Layout:
    rows: Sequence[Mapping[str, Any]]
    cols: list[str]
    note: str | None


def _layouts(
    rows: Sequence[Mapping[str, Any]], cols: list[str], optional: Sequence[str]
) -> list[_Layout]:
    """The layouts to try, widest first."""
    out = [_Layout(rows, cols, None)]
    pivoted = pivot_stats(rows, cols)
    if pivoted is not None:
        p_rows, p_cols = pivoted
        note = "one mean [95% interval] per metric (--format csv has every statistic)"
        out.append(_Layout(p_rows, p_cols, note))
    base = out[-1]
    hidden: list[str] = []
    for name in reversed(list(optional)):
        if name in base.cols:
            hidden.append(name)
            kept = [c for c in base.cols if c not in hidden]
            note = f"left out at this width: {', '.join(hidden)} (--format csv has them)"
            out.append(_Layout(base.rows, kept, note))
    return out


def print_table(
    rows: Sequence[Mapping[str, Any]],
    cols: Sequence[str],
    title: str | None = None,
    *,
    optional: Sequence[str] = (),
    width: int | None = None,
) -> None:
    """Print ``rows`` as a table that fits ``width`` (default: :func:`terminal_width`)."""
    avail = terminal_width() if width is None else width
    layouts = _layouts(rows, list(cols), optional)
    for layout in layouts:
        cells, numeric = format_cells(layout.rows, layout.cols)
        widths = fit_widths(layout.cols, cells, numeric, avail if avail else 10**6)
        if widths is not None:
            if layout.note:
                info(f"table narrowed to {avail} columns: {layout.note}")
            _render_table(title, layout.cols, cells, numeric, widths)
            return
    # nothing fits: one block per row, of the pivoted rows when there are any
    pivoted = pivot_stats(rows, list(cols))
    v_rows, v_cols = pivoted if pivoted is not None else (rows, list(cols))
    cells, _ = format_cells(v_rows, v_cols)
    info(f"table wider than {avail} columns: one block per row (--format csv for a table)")
    _render_vertical(title, v_cols, cells, avail or 80)


# --- Markdown and LaTeX --------------------------------------------------------------------


def _markdown(
    rows: Sequence[Mapping[str, Any]], cols: Sequence[str], title: str | None
) -> list[str]:
    cells, numeric = format_cells(rows, cols)

    def cell(text: str) -> str:
        return "–" if text == NULL else text.replace("\\", "\\\\").replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in cols) + " |"]
    lines.append("|" + "|".join("---:" if num else "---" for num in numeric) + "|")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in cells]
    if title:
        lines += ["", f"Table: {cell(title)}"]
    return lines


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """``text`` as LaTeX prints it literally (every special character escaped)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(rows: Sequence[Mapping[str, Any]], cols: Sequence[str], title: str | None) -> list[str]:
    cells, numeric = format_cells(rows, cols)

    def cell(text: str) -> str:
        return "--" if text == NULL else latex_escape(text)

    spec = "".join("r" if num else "l" for num in numeric)
    lines = [r"\begin{table}", r"\centering"]
    if title:
        lines.append(rf"\caption{{{latex_escape(title)}}}")
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    lines.append(" & ".join(cell(c) for c in cols) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(cell(c) for c in row) + r" \\" for row in cells]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return lines


# --- the one entry point -------------------------------------------------------------------


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
    optional: Sequence[str] = (),
) -> None:
    """Print ``rows`` (dicts with the same keys) on stdout in ``fmt``.

    ``optional``: columns a narrow terminal may leave out (the last first) before the table
    turns vertical; CSV, JSON, Markdown and LaTeX always have every column."""
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
    if fmt is OutputFormat.markdown:
        sys.stdout.write("\n".join(_markdown(rows, cols, title)) + "\n")
        return
    if fmt is OutputFormat.latex:
        sys.stdout.write("\n".join(_latex(rows, cols, title)) + "\n")
        return
    sys.stdout.flush()
    print_table(rows, cols, title, optional=optional)


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
