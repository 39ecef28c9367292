"""The tables the pages show, as rows and columns, and their CSV downloads.

Every number comes from the functions the report and ``xaiq stats`` call
(:mod:`xaiq.analysis`, :mod:`xaiq.report.verdict_section`); this module only picks them and
lays them out. CSV cells that a spreadsheet would run as a formula (leading ``=``, ``+``,
``-``, ``@``, tab or carriage return) are prefixed with ``'``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from xaiq.db.models import JobKind

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
DEFAULT_METRICS = ["feature_disagreement", "sign_disagreement", "euclidean", "rank_correlation"]


@dataclass
class Table:
    """One table of a page: ``name`` is its CSV file's stem."""

    name: str
    title: str
    rows: list[dict[str, Any]]
    columns: list[str]
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def cells(self) -> list[list[str]]:
        """Every row's cells as text, by the report's rounding rule (one rule per column:
        :func:`xaiq.report.format.num`), so a page and the report print the same digits."""
        from xaiq.report.format import needs_significant_digits, num

        rule = {c: needs_significant_digits(r.get(c) for r in self.rows) for c in self.columns}
        return [[num(r.get(c), c, rule[c]) for c in self.columns] for r in self.rows]


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([csv_cell(c) for c in columns])
    for r in rows:
        writer.writerow([csv_cell(r.get(c)) for c in columns])
    return buf.getvalue()


def verdict_tables(engine: Engine, job: Any) -> list[Table]:
    """The report's verdict: one table per model with its paragraph (disagreement jobs)."""
    from xaiq.report.html import HEADLINE_METRIC
    from xaiq.report.results_section import config_keys, rank_where
    from xaiq.report.verdict_section import job_verdicts, verdict_parts
    from xaiq.xai.figures import model_title

    keys, _ = config_keys(engine, job.id)
    where, scope = rank_where(engine, job, HEADLINE_METRIC, keys, None)
    verdicts = job_verdicts(engine, job, where, scope, HEADLINE_METRIC)
    single = len(verdicts) == 1
    out = []
    for i, mv in enumerate(verdicts):
        parts = verdict_parts(mv, single)
        for j, (caption, rows, cols) in enumerate(parts):
            title = "Verdict" if single else f"Verdict: {model_title(mv.model)}"
            if caption:
                title = caption if single else f"{model_title(mv.model)}: {caption}"
            name = f"verdict-{i + 1}" + (f"-{j + 1}" if j else "")
            note = mv.paragraph if j == len(parts) - 1 else ""  # under the model's last table
            out.append(Table(name, title, rows, cols, note=note))
    return out


def stats_table(engine: Engine, job_ids: list[int], group_by: list[str]) -> Table:
    """``xaiq stats disagreement`` for the jobs (its grouping rule: varying configuration
    keys are added), four headline metrics."""
    from xaiq.analysis.stats_table import disagreement_table

    t = disagreement_table(engine, job_ids, group_by, DEFAULT_METRICS)
    return Table("stats", t.title, t.rows, t.columns)


def faith_table(engine: Engine, job: Any) -> Table | None:
    from xaiq.analysis.faithfulness import faithfulness_stats

    rows = faithfulness_stats(engine, [job.id], ["method"])
    if not rows:
        return None
    cols = list(rows[0])
    return Table("faithfulness", "Faithfulness (deletion / insertion)", rows, cols)


def attack_table(engine: Engine, job: Any, key: str = "job") -> Table:
    from xaiq.analysis.intervals import wilson_interval
    from xaiq.analysis.queries import ATTACK_COLUMNS, attack_stats

    rows = attack_stats(engine, [job.id], [key])
    for r in rows:
        ci = wilson_interval(r["successes"], r["n"])
        r["success_ci_low"], r["success_ci_high"] = ci if ci is not None else (None, None)
    cols = [key, "n", "successes", "success_rate", "success_ci_low", "success_ci_high"]
    cols += [c for c in ATTACK_COLUMNS[3:] if c not in cols]
    title = "Attack" if key == "job" else f"Attack by {key}"
    return Table(f"attack-by-{key}", title, rows, cols, note="success interval: Wilson, 95%")


def failures_table(engine: Engine, job: Any, limit: int = 200) -> Table:
    from xaiq.db.lifecycle import job_errors
    from xaiq.db.session import read_session

    with read_session(engine) as session:
        rows = job_errors(session, job.id, limit=limit)
    return Table("failures", "Failures", rows, ["sample_index", "key", "stage", "message"])


def job_tables(engine: Engine, job: Any) -> list[Table]:
    """Every table of a job's page, in the page's order."""
    return [*KIND_TABLES[job.kind](engine, job), failures_table(engine, job)]


def _disagreement_tables(engine: Engine, job: Any) -> list[Table]:
    out = [*verdict_tables(engine, job), stats_table(engine, [job.id], ["pair"])]
    faith = faith_table(engine, job)
    return out if faith is None else [*out, faith]


# a job page's own tables, per job kind (one entry per kind of xaiq.scheduler.kinds)
KIND_TABLES: dict[JobKind, Callable[[Engine, Any], list[Table]]] = {
    JobKind.attribution: lambda engine, job: [],
    JobKind.disagreement: _disagreement_tables,
    JobKind.attack: lambda engine, job: [
        attack_table(engine, job),
        attack_table(engine, job, "label"),
    ],
}


def compare_table(engine: Engine, a: Any, b: Any) -> Table:
    """Two disagreement jobs side by side: ``xaiq stats`` grouped by pair, configuration and
    job, one row per pair and configuration with each job's mean [95% interval] (n)."""
    from xaiq.analysis.grouping import resolve_grouping
    from xaiq.analysis.queries import disagreement_stats
    from xaiq.report.format import ci_text, num

    ids = [a.id, b.id]
    grouping = resolve_grouping(
        engine, ids, ["pair", "job"], exclude=("model", "dataset", "target")
    )
    group = [k for k in grouping.keys if k != "job"]
    merged: dict[tuple, dict[str, Any]] = {}
    for metric in DEFAULT_METRICS:
        for r in disagreement_stats(engine, ids, grouping.keys, [metric]):
            row = merged.setdefault(
                (*(r[k] for k in group), metric), {**{k: r[k] for k in group}, "metric": metric}
            )
            cell = "NULL" if r["mean"] is None else f"{num(r['mean'])} {ci_text(r)}".strip()
            row[f"job {r['job']}"] = f"{cell} (n={r['n']})"
    cols = [*group, "metric", *(f"job {j}" for j in ids)]
    for row in merged.values():
        for c in cols[-2:]:
            row.setdefault(c, "not in this job")
    rows = sorted(merged.values(), key=lambda r: tuple(str(r.get(k)) for k in cols[:-2]))
    return Table(f"compare-{a.id}-{b.id}", "Side by side", rows, cols)


__all__ = [
    "Table",
    "attack_table",
    "compare_table",
    "csv_cell",
    "failures_table",
    "job_tables",
    "stats_table",
    "to_csv",
    "verdict_tables",
]
