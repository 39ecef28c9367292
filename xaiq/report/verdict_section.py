"""The report's opening: one verdict table per model and the paragraph generated from it.

Reads the rows (faithfulness, sanity, disagreement at the ranking configuration) through the
same statistics functions as ``xaiq stats``; :mod:`xaiq.analysis.verdict` turns them into the
verdict. Columns a job lacks (no ``--faithfulness``, no ``--sanity``, no random baseline, no
stored sparseness) are left out.
"""

from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy import Engine

from xaiq.analysis.faithfulness import faithfulness_stats, sanity_stats
from xaiq.analysis.glossary import GLOSSARY
from xaiq.analysis.stats_table import disagreement_table
from xaiq.analysis.verdict import Interval, MethodVerdict, ModelVerdict, model_verdicts
from xaiq.report import data
from xaiq.report.format import num, table
from xaiq.xai.figures import method_title, model_title

INTERVAL = re.compile(r"\[([^\s\[\],<>]+), ([^\s\[\],<>]+)\]")


def keep_intervals_whole(page: str) -> str:
    """``[low, high]`` in ``page`` (escaped HTML) with a no-break space after the comma: a
    cell may break before its interval, never inside it."""
    return INTERVAL.sub(r"[\1,&nbsp;\2]", page)


def _cell(iv: Interval) -> str:
    mean, low, high = iv
    if mean is None:
        return ""
    return f"{num(mean)} [{num(low)}, {num(high)}]" if low is not None else num(mean)


def _sanity(iv: Interval, verdict: str | None) -> str:
    if verdict is None:
        return ""
    return f"{verdict}: {_cell(iv)}"


def job_verdicts(
    engine: Engine, job: Any, where: dict[str, Any], config: str, metric: str
) -> list[ModelVerdict]:
    """The verdicts of a disagreement job, disagreement read at ``where`` (key -> value)."""
    faith = faithfulness_stats(engine, [job.id], ["method"])
    layers, sanity = sanity_stats(engine, [job.id])
    rows = disagreement_table(engine, [job.id], ["pair"], [metric]).rows
    pairs = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    return model_verdicts(
        data.job_models(job),
        data.job_methods(job),
        faith=faith,
        sanity_layers=layers,
        sanity=sanity,
        pairs=pairs,
        metric=metric,
        config=config,
        title=method_title,
    )


def verdict_parts(
    mv: ModelVerdict, single: bool
) -> list[tuple[str, list[dict[str, Any]], list[str]]]:
    """One model's verdict as the tables a page shows, ``(caption, rows, columns)``: the
    trust table, then the disagreement between the maps as a table of its own (a job over
    two models and three methods has six ``vs`` columns, too many beside the trust columns
    to fit a page). A job without faithfulness or sanity rows has the disagreement table
    only, without a caption."""
    trust = _trust_rows(mv)
    vs = _disagreement_rows(mv, single)
    parts: list[tuple[str, list[dict[str, Any]], list[str]]] = []
    if trust and len(trust[0]) > 1:
        parts.append(("", trust, list(trust[0])))
    if vs and len(vs[0]) > 1:
        at = f" (at {mv.config})" if mv.config else ""  # a job of one configuration: none
        caption = f"Mean {mv.metric.replace('_', ' ')} between the maps{at}" if parts else ""
        parts.append((caption, vs, list(vs[0])))
    return parts


def _trust_rows(mv: ModelVerdict) -> list[dict[str, Any]]:
    have = {
        "faith": any(v.deletion[0] is not None for v in mv.methods),
        "random": any(v.random_deletion[0] is not None for v in mv.methods),
        "sanity": any(v.sanity_abs_verdict is not None for v in mv.methods),
        "signed": any(v.sanity_signed_verdict is not None for v in mv.methods),
        "sparse": any(v.sparseness[0] is not None for v in mv.methods),
    }
    threshold = next((v.threshold for v in mv.methods if v.threshold is not None), None)
    rows = []
    for v in mv.methods:
        row: dict[str, Any] = {"method": method_title(v.method)}
        if have["faith"]:
            row["deletion AUC ↓"] = _cell(v.deletion)
            if have["random"]:
                row["random order: deletion"] = _cell(v.random_deletion)
            row["insertion AUC ↑"] = _cell(v.insertion)
            if have["random"]:
                row["random order: insertion"] = _cell(v.random_insertion)
            if any(m.insertion_vs_random[1] is not None for m in mv.methods):
                row["deletion − random (paired)"] = _cell(v.deletion_vs_random)
                row["insertion − random (paired)"] = _cell(v.insertion_vs_random)
            row["faithful"] = _yes(v.faithful) or ("inconclusive" if v.score is not None else "")
        if have["sanity"]:
            row[f"sanity |map| (pass < {threshold:g})"] = _sanity(
                v.sanity_abs, v.sanity_abs_verdict
            )
        if have["signed"]:
            row[f"sanity signed (pass < {threshold:g})"] = _sanity(
                v.sanity_signed, v.sanity_signed_verdict
            )
        if have["sparse"]:
            row["sparseness (Gini)"] = _cell(v.sparseness)
        if have["faith"] or have["sanity"]:
            row["supported"] = _yes(v.supported) or "inconclusive"
        rows.append(row)
    return rows


def _disagreement_rows(mv: ModelVerdict, single: bool) -> list[dict[str, Any]]:
    def label(name: str) -> str:
        return method_title(name.partition(":")[2] if single and ":" in name else name)

    others = [o for o in mv.others if any(o in v.disagreement for v in mv.methods)]
    return [
        {"method": method_title(v.method), **{f"vs {label(o)}": _disagree(v, o) for o in others}}
        for v in mv.methods
    ]


def _disagree(v: MethodVerdict, other: str) -> Any:
    if other == v.name:
        return "—"
    value = v.disagreement.get(other)
    return "" if other not in v.disagreement else value


def _yes(flag: bool | None) -> str:
    return "" if flag is None else ("yes" if flag else "no")


def verdict_section(
    engine: Engine, job: Any, where: dict[str, Any], config: str, metric: str
) -> str:
    """HTML: the verdict tables (one per model) and their paragraphs."""
    verdicts = job_verdicts(engine, job, where, config, metric)
    single = len(verdicts) == 1
    info = GLOSSARY[metric]
    out = ["<h2>Verdict: which explanation to trust</h2>"]
    for mv in verdicts:
        parts = verdict_parts(mv, single)
        if not parts:
            continue
        if not single:
            out.append(f"<h3>{html.escape(model_title(mv.model))}</h3>")
        for caption, rows, cols in parts:
            if caption:
                out.append(f'<p class="caption">{html.escape(caption)}</p>')
            verdict_table = table(rows, cols).replace("<table>", '<table class="verdict">', 1)
            # an interval stays whole; a cell may break before it, so the table fits the page
            out.append(keep_intervals_whole(verdict_table))
        out.append(f'<p class="verdict">{html.escape(mv.paragraph)}</p>')
    measured = [v for mv in verdicts for v in mv.methods]
    notes = []
    if any(v.deletion[0] is not None for v in measured):
        notes.append(
            "AUCs: the pixel deletion / insertion games (probability of the explained class;"
            " mean [95% interval])."
        )
    if any(v.sanity_abs_verdict is not None for v in measured):
        notes.append(
            "Sanity: mean Spearman correlation between the trained and the fully randomised"
            " model's maps after the last layer [95% interval]; a map passes when the upper"
            " bound is below the threshold."
        )
    notes.append(
        f"vs columns: mean {info.title} ({info.range_text}, {info.agreement_when} = agree)"
        f" at {config or 'the job'}."
    )
    if len(notes) > 1:
        notes.append("Supported: faithful and passing the |map| check, where measured.")
    notes.append("The sections below are the evidence.")
    out.append(f'<p class="note">{html.escape(" ".join(notes))}</p>')
    return "\n".join(out)


__all__ = ["job_verdicts", "verdict_parts", "verdict_section"]
