"""HTML pieces of the report: escaped tables, numbers, intervals and embedded images.

Numbers: Python ints (and integral floats in count columns) print as integers, other floats
with three decimals (``4g`` beyond 1e4 or below 1e-3); ``None`` prints ``NULL``. Every text
from the store is escaped.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from xaiq.report import plots

COUNT_COLUMNS = frozenset(
    {
        "n",
        "nulls",
        "successes",
        "samples",
        "median_iterations",
        "median_forward_passes",
        "label",
        "pred",
        "n_segments",
        "job",
        "misclassified n",
        "correct n",
    }
)


def needs_significant_digits(values: Iterable[Any]) -> bool:
    """Whether a column's floats are shown with 4 significant digits (one finite non-zero
    value below 0.001 or at least 10,000 in magnitude) rather than 3 decimals: one rule per
    column, so its numbers line up and compare."""
    return any(
        isinstance(v, float) and math.isfinite(v) and v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3)
        for v in values
    )


def num(value: Any, column: str = "", significant: bool | None = None) -> str:
    """One cell. ``significant``: the column's rule (:func:`needs_significant_digits`); by
    default the value's own."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if column in COUNT_COLUMNS and value.is_integer():
            return str(int(value))
        if significant is None:
            significant = needs_significant_digits([value])
        if significant and value != 0:
            return f"{value:.4g}"
        return f"{value:.3f}"
    return str(value)


def ci_text(row: Mapping[str, Any]) -> str:
    """``[low, high]`` of a stats row's ``ci_low``/``ci_high`` (empty when undefined)."""
    if row.get("ci_low") is None:
        return ""
    return f"[{num(row['ci_low'])}, {num(row['ci_high'])}]"


def table(rows: Sequence[Mapping[str, Any]], cols: Sequence[str], cls: str = "") -> str:
    """Every row and column, escaped; a table wider than the page scrolls sideways inside
    its box (nothing is cut). ``cls``: the table's CSS class."""
    if not rows:
        return '<p class="note">no rows</p>'
    # a header may break after "_" (median_forward_passes), so wide tables narrow there
    head = "".join(f"<th>{html.escape(c).replace('_', '_<wbr>')}</th>" for c in cols)
    attr = f' class="{html.escape(cls)}"' if cls else ""
    significant = {c: needs_significant_digits(r.get(c) for r in rows) for c in cols}
    body = []
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            text = num(v, c, significant[c])
            # short cells (numbers, "0.512 [0.40, 0.61]") never wrap; long text does
            td = ["k"] if isinstance(v, str) else []
            if len(text) <= NOWRAP_CHARS:
                td.append("nw")
            attr_td = f' class="{" ".join(td)}"' if td else ""
            cells.append(f"<td{attr_td}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="wide"><table{attr}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


NOWRAP_CHARS = 32  # a cell this short is kept on one line (CSS class "nw")
PANEL_PX = 300  # the least displayed width of one panel (its labels stay readable)
_IDS = itertools.count(1)


def img(fig: Any, alt: str, panels: int | None = None) -> str:
    """The figure as an embedded PNG, never shown narrower than ``panels`` x
    :data:`PANEL_PX` (``panels``: its panel columns; default: counted from the figure), with
    a full-size view one click away (a CSS toggle: the page stays self-contained)."""
    cols = panels if panels is not None else panel_columns(fig)
    png = plots.png_bytes(fig)
    width = int.from_bytes(png[16:20], "big")  # the PNG header's width
    zid = f"zoom{next(_IDS)}"
    return (
        f'<div class="fig"><input type="checkbox" class="zoom" id="{zid}">'
        f'<label for="{zid}"><img alt="{html.escape(alt)}" data-panels="{cols}"'
        f' style="min-width: {min(width, cols * PANEL_PX)}px" src="{plots.data_uri(png)}">'
        f'</label><label for="{zid}" class="full">full size ({width} px)</label></div>'
    )


def panel_columns(fig: Any) -> int:
    """How many panels a figure has side by side (colour bars not counted)."""
    lefts = set()
    for ax in getattr(fig, "axes", []):
        if ax.get_label() == "<colorbar>":
            continue
        lefts.add(round(ax.get_position().x0, 2))
    return max(1, len(lefts))


def figure_row(items: Sequence[str]) -> str:
    """Figures side by side where the page is wide enough, wrapping otherwise."""
    return '<div class="figrow">' + "".join(items) + "</div>"


class _Status:
    """Where the report says what it is doing (the CLI points it at stderr)."""

    sink: Callable[[str], None] | None = None


def set_progress(sink: Callable[[str], None] | None) -> None:
    """Send the report's status lines (``reading rows...``) to ``sink`` (None: silence)."""
    _Status.sink = sink


def progress(message: str) -> None:
    if _Status.sink is not None:
        _Status.sink(message)


__all__ = [
    "PANEL_PX",
    "ci_text",
    "figure_row",
    "img",
    "num",
    "panel_columns",
    "progress",
    "set_progress",
    "table",
]
