"""Adjusting p-values for the number of tests a table makes.

A table with one test per group and metric (``xaiq stats disagreement --compare``: 3 pairs x
8 configurations x 4 metrics = 96 tests) finds "significant" rows by chance unless its
p-values are adjusted for the family: every test of one command or report section.

- ``holm`` (the default): Holm's step-down procedure, controls the family-wise error rate
  (the chance of even one false rejection) under any dependence between the tests. For the
  sorted p-values ``p(1) <= ... <= p(m)``:
  ``p_adj(i) = min(1, max_{j <= i} (m - j + 1) p(j))``.
- ``bh``: Benjamini-Hochberg, controls the false discovery rate (the expected share of
  false rejections among the rejections) for independent or positively dependent tests;
  more power when many effects are real:
  ``p_adj(i) = min(1, min_{j >= i} m p(j) / j)``.
- ``none``: the raw p-values (the title still says how many tests the table holds).

``m`` counts the p-values that exist: a row without a test (``None``) is not a test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any

from xaiq.db.errors import QueryError

ADJUST_METHODS = ("holm", "bh", "none")
DEFAULT_ADJUST = "holm"
_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "unadjusted"}


def check_adjust(method: str | None) -> str:
    """The adjustment's name (``None`` -> :data:`DEFAULT_ADJUST`); unknown names refused."""
    name = DEFAULT_ADJUST if method is None else str(method).strip().lower()
    if name not in ADJUST_METHODS:
        known = ", ".join(ADJUST_METHODS)
        raise QueryError(f"unknown p-value adjustment {method!r}; known: {known}")
    return name


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (module doc)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):  # rank 0 is the smallest p
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        out[i] = running
    return out


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order (module doc)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [0.0] * m
    running = 1.0
    for rank in range(m - 1, -1, -1):  # from the largest p down
        i = order[rank]
        running = min(running, m * float(p_values[i]) / (rank + 1))
        out[i] = min(1.0, running)
    return out


def adjust(p_values: Sequence[float | None], method: str = DEFAULT_ADJUST) -> list[float | None]:
    """Adjusted p-values for ``method`` (:data:`ADJUST_METHODS`); ``None`` stays ``None`` and
    is not counted as a test."""
    name = check_adjust(method)
    present = [i for i, p in enumerate(p_values) if p is not None]
    raw = [float(p_values[i]) for i in present]  # type: ignore[arg-type]
    if name == "holm":
        done = holm(raw)
    elif name == "bh":
        done = benjamini_hochberg(raw)
    else:
        done = raw
    out: list[float | None] = [None] * len(p_values)
    for i, p in zip(present, done, strict=True):
        out[i] = p
    return out


def _tests(n: int) -> str:
    return f"{n} test" if n == 1 else f"{n} tests"


def adjusted_label(method: str, tests: int) -> str:
    """The adjusted column's header in a printed table, e.g. ``p_adj (Holm, 96 tests)``."""
    name = check_adjust(method)
    if name == "none":
        return f"p_value (unadjusted, {_tests(tests)})"
    return f"p_adj ({_NAMES[name]}, {_tests(tests)})"


def adjustment_note(method: str, tests: int) -> str:
    """What a title says about the p-values: ``p-values Holm-adjusted for 96 tests``."""
    name = check_adjust(method)
    if name == "none":
        return f"p-values NOT adjusted ({_tests(tests)})"
    return f"p-values {_NAMES[name]}-adjusted for {_tests(tests)}"


def adjust_rows(
    rows: Iterable[MutableMapping[str, Any]],
    method: str = DEFAULT_ADJUST,
    *,
    p_key: str = "p_value",
    out_key: str = "p_adjusted",
) -> int:
    """Add ``out_key`` (the adjusted ``p_key``) to every row, the family being all the rows
    given; returns the number of tests (rows with a p-value)."""
    rows = list(rows)
    adjusted = adjust([r.get(p_key) for r in rows], method)
    for r, p in zip(rows, adjusted, strict=True):
        r[out_key] = p
    return sum(1 for r in rows if r.get(p_key) is not None)


def for_display(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], method: str, tests: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows and columns for a human-readable table: ``p_value`` and ``p_adjusted`` become one
    column headed :func:`adjusted_label` (the raw p stays in CSV/JSON)."""
    label = adjusted_label(method, tests)
    shown = [dict(r, **{label: r.get("p_adjusted")}) for r in rows]
    cols: list[str] = []
    for c in columns:
        if c == "p_value":
            cols.append(label)
        elif c != "p_adjusted":
            cols.append(c)
    return shown, cols


__all__ = [
    "ADJUST_METHODS",
    "DEFAULT_ADJUST",
    "adjust",
    "adjust_rows",
    "adjusted_label",
    "adjustment_note",
    "benjamini_hochberg",
    "check_adjust",
    "for_display",
    "holm",
]
