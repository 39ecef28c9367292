"""``xaiq report A B``: the two jobs compared, every metric, pair and configuration.

The numbers are :func:`xaiq.analysis.job_compare.compare_jobs`'s: each job's mean with its
95% interval, the difference A − B with its interval, paired by sample where the jobs
explain the same images, and p-values adjusted together over the section's tests (the
title says how). One table per metric (rows: pair x configuration, every one present in both
jobs), then the faithfulness AUCs and the sanity verdicts when both jobs have them. Wide
tables scroll sideways inside the page; no row is left out.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from xaiq.analysis.glossary import GLOSSARY
from xaiq.analysis.job_compare import (
    CONFIG_COLUMNS,
    FAITH_GAME,
    JobComparison,
    compare_jobs,
)
from xaiq.analysis.multiplicity import adjusted_label, adjustment_note
from xaiq.report import charts
from xaiq.report.format import num, table
from xaiq.xai.figures import method_title

_MEASURE_TITLES = {
    "deletion_auc": "Deletion AUC (lower = more faithful)",
    "insertion_auc": "Insertion AUC (higher = more faithful)",
}


def _cell(row: dict[str, Any], side: str) -> str:
    mean = row[f"mean_{side}"]
    if mean is None:
        return f"NULL (n={row[f'n_{side}']})"
    ci = ""
    if row[f"low_{side}"] is not None:
        ci = f" [{num(row[f'low_{side}'])}, {num(row[f'high_{side}'])}]"
    return f"{num(mean)}{ci} (n={row[f'n_{side}']})"


def _diff(row: dict[str, Any]) -> str:
    if row["diff"] is None:
        return "—"
    ci = ""
    if row["diff_low"] is not None:
        ci = f" [{num(row['diff_low'])}, {num(row['diff_high'])}]"
    return f"{num(row['diff'])}{ci}"


def _varying(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> tuple[list[str], dict]:
    """The keys that take several values over ``rows`` (table columns) and the constant ones
    (said once, above the tables)."""
    shown, constant = [], {}
    for k in keys:
        values = {r[k] for r in rows if r[k] is not None}
        if len(values) > 1:
            shown.append(k)
        elif len(values) == 1:
            constant[k] = next(iter(values))
    return shown, constant


def _constants(constant: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in constant.items()
    )


def _tables(
    cmp: JobComparison,
    rows: list[dict[str, Any]],
    name_key: str,
    measure_key: str,
    keys: Sequence[str],
    what: str,
    titles: dict[str, str],
) -> list[str]:
    """One table per metric (or measure): rows = ``name_key`` x the varying ``keys``."""
    varying, constant = _varying(rows, keys)
    p_col = adjusted_label(cmp.adjust, cmp.tests)
    a_col, b_col = f"{cmp.label_a}: mean [95% CI] (n)", f"{cmp.label_b}: mean [95% CI] (n)"
    d_col = "difference A − B [95% CI]"
    cols = [name_key, *varying, a_col, b_col, d_col, "n pairs", p_col, "rank-biserial"]
    if not cmp.paired:
        cols.remove("n pairs")
    out = []
    if constant:
        out.append(
            f'<p class="note">{html.escape(what)} at {html.escape(_constants(constant))}</p>'
        )
    for metric in dict.fromkeys(r[measure_key] for r in rows):
        shown = []
        for r in rows:
            if r[measure_key] != metric:
                continue
            name = r[name_key]
            label = charts.pair_title(name) if name_key == "pair" else method_title(name)
            shown.append(
                {
                    name_key: label,
                    **{k: ("any" if r[k] is None and k == "k_frac" else r[k]) for k in varying},
                    a_col: _cell(r, "a"),
                    b_col: _cell(r, "b"),
                    d_col: _diff(r),
                    "n pairs": r["n_pairs"],
                    p_col: r["p_adjusted"],
                    "rank-biserial": r["rank_biserial"],
                }
            )
        out.append(
            f'<h4 data-metric="{html.escape(metric)}">{html.escape(titles[metric])}'
            f" — {len(shown)} rows</h4>" + table(shown, cols, cls="cmp")
        )
    return out


def comparison_section(engine: Any, job_a: int, job_b: int) -> str:
    """The HTML section comparing job ``job_a`` with job ``job_b`` (module doc)."""
    cmp = compare_jobs(engine, job_a, job_b)
    if not cmp.disagreement:
        return _nothing_shared(cmp)
    how = "paired by sample" if cmp.paired else "independent samples"
    note = adjustment_note(cmp.adjust, cmp.tests)
    out = [
        f'<h2 class="compare">{html.escape(cmp.label_a)} vs {html.escape(cmp.label_b)}:'
        f" every metric, {how} — {html.escape(note)}</h2>"
    ]
    if cmp.paired:
        how_text = (
            f"Both jobs explain the same images ({cmp.shared_samples} samples are in both):"
            " the difference A − B is the mean of the per-sample differences over the samples"
            " both jobs have in that row (n pairs), with its Student-t 95% interval, tested by"
            " Wilcoxon's signed-rank test."
        )
    else:
        how_text = (
            "The jobs explain different images (different datasets): the difference of the"
            " means A − B has Welch's 95% interval and is tested by the Mann-Whitney U test."
        )
    out.append(
        f'<p class="note">A = {html.escape(cmp.label_a)}, B = {html.escape(cmp.label_b)}. '
        f"{html.escape(how_text)} Rank-biserial &gt; 0: A's values tend larger. Every p-value"
        f" of this section ({cmp.tests} tests: metrics x pairs x configurations"
        + (" and faithfulness AUCs" if cmp.faithfulness else "")
        + f") is adjusted together ({html.escape(note)}). Each job's mean has a 95%"
        " Student-t interval clipped to the metric's range; Euclidean distances do not depend"
        " on k_frac and are compared once per configuration (k_frac any).</p>"
    )
    if cmp.only_a or cmp.only_b:
        out.append(
            '<p class="note">not compared (configurations one job lacks): '
            f"{cmp.only_a} metric cells only in {html.escape(cmp.label_a)},"
            f" {cmp.only_b} only in {html.escape(cmp.label_b)}.</p>"
        )
    titles = {
        m: f"{info.title} (range {info.range_text}, {info.agreement_when} = the maps agree)"
        for m, info in GLOSSARY.items()
    }
    out.append("<h3>Disagreement metrics</h3>" if cmp.disagreement else "")
    out += _tables(cmp, cmp.disagreement, "pair", "metric", CONFIG_COLUMNS, "every metric", titles)
    if cmp.faithfulness:
        out.append("<h3>Faithfulness AUCs</h3>")
        out += _tables(
            cmp,
            cmp.faithfulness,
            "method",
            "measure",
            FAITH_GAME,
            "deletion/insertion",
            _MEASURE_TITLES,
        )
    if cmp.sanity:
        rows = [
            {
                "method": method_title(r["method"]),
                "mode": r["mode"],
                f"{cmp.label_a}": _sanity(r, "a"),
                f"{cmp.label_b}": _sanity(r, "b"),
            }
            for r in cmp.sanity
        ]
        out.append(
            "<h3>Sanity check verdicts</h3>"
            '<p class="note">mean Spearman correlation of |map| (and signed) between the'
            " trained and the randomised model at the last layer; pass when the interval's"
            " upper end is below the threshold (a verdict, not a test).</p>"
            + table(rows, ["method", "mode", cmp.label_a, cmp.label_b], cls="cmp")
        )
    return "\n".join(out)


def _pairs(pairs: Sequence[str]) -> str:
    return "; ".join(charts.pair_title(p) for p in pairs) or "none"


def _nothing_shared(cmp: JobComparison) -> str:
    """Two jobs without a pair and configuration in common: what each has instead."""
    return (
        f'<h2 class="compare">{html.escape(cmp.label_a)} vs {html.escape(cmp.label_b)}:'
        " no pair and configuration in common</h2>"
        f'<p class="note">nothing to compare: {html.escape(cmp.label_a)} has the pairs'
        f" {html.escape(_pairs(cmp.pairs_a))}; {html.escape(cmp.label_b)} has"
        f" {html.escape(_pairs(cmp.pairs_b))}. A cross-model job names its maps model:method,"
        " so its pairs match only another job over the same models; where the pairs match,"
        " the configurations (superpixels, n_segments, k_frac, explained class) do not."
        " Each job's report follows.</p>"
    )


def _sanity(row: dict[str, Any], side: str) -> str:
    verdict = row[f"verdict_{side}"] or "inconclusive"
    return (
        f"{verdict}: |map| {num(row[f'spearman_abs_{side}'])}"
        f" (upper {num(row[f'spearman_abs_high_{side}'])}),"
        f" signed {num(row[f'spearman_signed_{side}'])} (n={row[f'n_{side}']})"
    )


__all__ = ["comparison_section"]
