"""A disagreement job as a results section: headline, glossary, tables with intervals,
distributions per configuration, correctness and confidence, per class, ranked examples.

Every statistic comes from the same functions as ``xaiq stats disagreement`` (the pooling
rule, Student-t intervals, Welch / Mann-Whitney comparisons), so the report and the CLI
never disagree. ``metric`` is the headline metric: examples and the correctness and
per-class views use it.
"""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy import Engine

from xaiq.analysis.compare import compare_table
from xaiq.analysis.glossary import GLOSSARY, glossary_rows
from xaiq.analysis.grouping import resolve_grouping
from xaiq.analysis.intervals import wilson_interval
from xaiq.analysis.multiplicity import adjusted_label, adjustment_note
from xaiq.analysis.stats_table import disagreement_table
from xaiq.db.errors import QueryError
from xaiq.db.models import METRIC_COLUMNS
from xaiq.report import charts, data
from xaiq.report.format import ci_text, figure_row, img, num, progress, table
from xaiq.xai.figures import method_title, model_title

DISAGREEMENT_METRICS = [m for m in METRIC_COLUMNS if GLOSSARY[m].kind == "disagreement"]
AGREEMENT_METRICS = [m for m in METRIC_COLUMNS if GLOSSARY[m].kind == "agreement"]
N_EXAMPLES = 3


def config_keys(engine: Engine, job_id: int) -> tuple[list[str], dict[str, Any]]:
    grouping = resolve_grouping(engine, [job_id], ["pair"])
    return [k for k in grouping.added if k != "job"], grouping.constant


def _pivot(rows: list[dict], keys: list[str], metrics: list[str]) -> list[dict]:
    """One row per pair and configuration, one ``mean [low, high]`` cell per metric."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        row = out.setdefault(tuple(r[k] for k in keys), {k: r[k] for k in keys})
        cell = "NULL" if r["mean"] is None else f"{num(r['mean'])} {ci_text(r)}"
        if r["nulls"]:
            cell += f" · {r['nulls']} NULL"
        row[r["metric"]] = cell
        row.setdefault("used", {})[r["metric"]] = r["n"]
    for row in out.values():
        # n: the samples most metrics use; a metric whose mean uses fewer says so
        used = row.pop("used")
        row["n"] = max(used.values())
        for m, n in used.items():
            if n != row["n"]:
                row[m] += f" (n={n})"
    return list(out.values())


def headline(engine: Engine, job: Any, metric: str, keys: list[str], constant: dict) -> str:
    counts = data.job_counts(engine, job.id)
    methods = ", ".join(method_title(m) for m in data.job_methods(job)) or "-"
    n, ok = counts["samples"], counts["correct"]
    acc = wilson_interval(ok, n) if n else None
    acc_text = f"{ok} of {n} correct ({num(ok / n)} [{num(acc[0])}, {num(acc[1])}])" if acc else ""
    fixed = ", ".join(
        f"{k} {v}" for k, v in constant.items() if k not in ("model", "dataset") and v is not None
    )
    swept = f"; swept: {', '.join(keys)}" if keys else ""
    models = data.job_models(job)
    items = [
        f"<b>{html.escape(', '.join(model_title(m) for m in models))}</b> on"
        f" <b>{html.escape(job.dataset)}</b>: {n} samples,"
        + (f" {html.escape(acc_text)}," if len(models) == 1 else "")
        + f" {counts['sample_errors']} sample errors.",
        f"Methods: {html.escape(methods)}. Configuration: {html.escape(fixed)}"
        f"{html.escape(swept)}.",
    ]
    if len(models) > 1:
        items.append(html.escape(model_accuracy(engine, job)))
    stats = disagreement_table(engine, [job.id], ["pair"], [metric]).rows
    stats = [r for r in stats if r["mean"] is not None]
    if stats:
        info = GLOSSARY[metric]
        # "most disagreement" is the high end of a disagreement metric, the low end otherwise
        order = sorted(stats, key=lambda r: r["mean"], reverse=info.agreement_when == "low")

        def where(r: dict) -> str:
            cfg = data.config_label(keys, [r[k] for k in keys]) if keys else ""
            pair = charts.pair_title(r["pair"])
            return f"{pair}{f' ({cfg})' if cfg else ''}: {num(r['mean'])} {ci_text(r)}"

        items.append(
            f"Most disagreement ({html.escape(info.title)}, range {info.range_text},"
            f" {info.agreement_when} = agree): {html.escape(where(order[0]))}."
        )
        items.append(f"Least disagreement: {html.escape(where(order[-1]))}.")
    items.append(
        "Intervals are 95% Student-t intervals of the mean (mean ± t·sd/√n), clipped to the"
        " metric's range; statistics never pool configurations."
    )
    return "<h2>Summary</h2><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def model_accuracy(engine: Engine, job: Any) -> str:
    """``Accuracy: digits-cnn 11 of 12 (0.917 [..]); digits-cnn-weak 7 of 12 (...)``."""
    labels = data.sample_labels(engine, job.id)
    parts = []
    for model, preds in data.model_predictions(engine, job).items():
        both = [(p, labels.get(i)) for i, p in preds.items() if labels.get(i) is not None]
        if not both:
            parts.append(f"{model_title(model)}: no predictions stored")
            continue
        ok = sum(1 for p, lab in both if p == lab)
        lo, hi = wilson_interval(ok, len(both)) or (None, None)
        parts.append(
            f"{model_title(model)} {ok} of {len(both)} correct ({num(ok / len(both))}"
            f" [{num(lo)}, {num(hi)}])"
        )
    return "Accuracy per model: " + "; ".join(parts) + "."


def glossary_section() -> str:
    cols = ["metric", "name", "kind", "range", "agreement when", "definition", "NULL when"]
    return "<h2>Glossary</h2>" + table(glossary_rows(), cols)


def tables_section(engine: Engine, job: Any, keys: list[str]) -> str:
    out = ["<h2>Statistics per pair and configuration</h2>"]
    for title, metrics in (
        ("Disagreement metrics (higher = the maps disagree more)", DISAGREEMENT_METRICS),
        ("Agreement metrics (higher = the maps agree more)", AGREEMENT_METRICS),
    ):
        rows = disagreement_table(engine, [job.id], ["pair"], metrics).rows
        group = ["pair", *keys]
        pivot = _pivot(rows, group, metrics)
        for r in pivot:
            r["pair"] = charts.pair_title(r["pair"])
        out.append(f"<h3>{title}</h3>" + table(pivot, [*group, "n", *metrics]))
    reasons = sorted({r["null_reason"] for r in rows if r.get("null_reason")})
    if reasons:
        out.append(
            '<p class="note">NULL: zero map = one map is all zero; constant |map| = one map'
            " has no ranking (every top-k and rank metric is undefined).</p>"
        )
    return "\n".join(out)


def distributions_section(values: charts.Values) -> str:
    metrics = DISAGREEMENT_METRICS
    figs = charts.distributions_figures(values, metrics)
    return (
        "<h2>Distributions per configuration</h2>"
        '<p class="note">one figure per configuration; per pair a box (median, quartiles,'
        f" whiskers at 1.5 IQR; triangle: mean) when it holds at least {charts.MIN_BOX_N}"
        " values that are not all 0 or 1, otherwise its mean with the 95% interval (Wilson"
        " for 0/1 values, Student-t otherwise) and the values as dots. Click a figure for its"
        " full size.</p>"
        + figure_row([img(fig, f"distributions at {config}", 1) for config, fig in figs])
    )


def correctness_section(engine: Engine, job: Any, values: charts.Values, metric: str) -> str:
    out = ["<h2>Disagreement, correctness and confidence</h2>"]
    try:
        cmp = compare_table(engine, [job.id], ["pair"], "correct", [metric])
    except QueryError as exc:  # every sample correct, or no labels
        out.append(f'<p class="note">no comparison: {html.escape(str(exc))}</p>')
    else:
        p_label = f"Mann-Whitney {adjusted_label(cmp.adjust or 'holm', cmp.tests)}"
        note = adjustment_note(cmp.adjust or "holm", cmp.tests)
        rows = []
        for r in cmp.rows:
            diff = "NULL" if r["diff"] is None else num(r["diff"])
            if r["diff_low"] is not None:
                diff += f" [{num(r['diff_low'])}, {num(r['diff_high'])}]"
            rows.append(
                {
                    **{k: r[k] for k in cmp.grouping.keys},
                    "pair": charts.pair_title(r["pair"]),
                    "misclassified n": r["n_a"],
                    "misclassified mean": r["mean_a"],
                    "correct n": r["n_b"],
                    "correct mean": r["mean_b"],
                    "difference [95% CI]": diff,
                    p_label: r["p_adjusted"],
                    "rank-biserial": r["rank_biserial"],
                }
            )
        cols = [*cmp.grouping.keys, "misclassified n", "misclassified mean", "correct n"]
        cols += ["correct mean", "difference [95% CI]", p_label, "rank-biserial"]
        out.append(
            f'<p class="note">{html.escape(GLOSSARY[metric].title)}: difference ='
            " misclassified − correct (Welch 95% interval); rank-biserial &gt; 0: misclassified"
            f" samples tend higher; Mann-Whitney {html.escape(note)}.</p>" + table(rows, cols)
        )
    out.extend(
        img(fig, f"correctness and confidence at {config}", 2)
        for config, fig in charts.correctness_figures(values, metric)
    )
    return "\n".join(out)


def per_class_section(engine: Engine, job: Any, metric: str, keys: list[str]) -> str:
    rows = disagreement_table(engine, [job.id], ["pair", "label"], [metric]).rows
    group = ["pair", *keys]
    pivot: dict[tuple, dict[str, Any]] = {}
    labels: list[Any] = []
    for r in rows:
        row = pivot.setdefault(
            tuple(r[k] for k in group),
            {**{k: r[k] for k in group}, "pair": charts.pair_title(r["pair"])},
        )
        label = "no label" if r["label"] is None else str(r["label"])
        labels.append(label)
        row[label] = "NULL" if r["mean"] is None else f"{num(r['mean'])} (n={r['n']})"
    cols = [*group, *dict.fromkeys(sorted(set(labels), key=lambda s: (len(s), s)))]
    return (
        f'<h2>Per class</h2><p class="note">mean {html.escape(GLOSSARY[metric].title)} per'
        " true label</p>" + table(list(pivot.values()), cols)
    )


def rank_where(
    engine: Engine, job: Any, metric: str, keys: list[str], rank_at: dict[str, str] | None
) -> tuple[dict[str, Any], str]:
    """The ranking configuration (:mod:`xaiq.report.rank_config`) and its label."""
    from xaiq.report.rank_config import choose_config

    _, constant = config_keys(engine, job.id)
    rows = disagreement_table(engine, [job.id], ["pair"], [metric]).rows
    configs = [{**constant, **{k: r[k] for k in keys}} for r in rows]
    where = choose_config(configs, keys, requested=rank_at)
    return where, (data.config_label(keys, list(where.values())) if keys else "")


def examples_section(
    engine: Engine, job: Any, metric: str, keys: list[str], where: dict[str, Any], scope: str
) -> str:
    from xaiq.report.show import sample_map_figure
    from xaiq.xai.figures import PRESETS

    info = GLOSSARY[metric]
    out = [
        f"<h2>Examples ranked by {html.escape(info.title)}</h2>"
        f'<p class="note">mean over the pairs at {html.escape(scope or "the job")}'
        " (choose another with <code>xaiq report --rank-at KEY=VALUE,...</code>)</p>"
    ]
    most_high = info.agreement_when == "low"
    for title, descending in (
        ("Most disagreeing", most_high),
        ("Least disagreeing", not most_high),
    ):
        out.append(f"<h3>{title}</h3>")
        for idx, value in data.ranked_in_config(
            engine, job.id, metric, where, N_EXAMPLES, descending=descending
        ):
            what = f"mean {info.title} over pairs: {num(value)}"
            try:
                fig = sample_map_figure(engine, job, idx, what=what, style=PRESETS["default"])
            except Exception as exc:  # a missing artifact costs that picture only
                out.append(f'<p class="note">sample {idx}: {html.escape(str(exc))}</p>')
                continue
            out.append(img(fig, f"sample {idx}: {what}"))
    return "\n".join(out)


def disagreement_results(
    engine: Engine,
    job: Any,
    metric: str,
    *,
    glossary: bool = True,
    rank_at: dict[str, str] | None = None,
) -> str:
    """The whole results section of one disagreement job (HTML): the verdict first, then
    the evidence. ``glossary=False`` leaves the glossary out (a side-by-side page shows it
    once); ``rank_at``: the configuration of the examples and the verdict's disagreement
    (:func:`xaiq.report.rank_config.choose_config`)."""
    from xaiq.report.verdict_section import verdict_section

    keys, constant = config_keys(engine, job.id)
    where, scope = rank_where(engine, job, metric, keys, rank_at)
    progress(f"job {job.id}: reading rows...")
    values = data.job_values(engine, job.id, list(METRIC_COLUMNS), keys)
    parts = [verdict_section(engine, job, where, scope, metric)]
    parts.append(headline(engine, job, metric, keys, constant))
    if glossary:
        parts.append(glossary_section())
    parts.append(tables_section(engine, job, keys))
    if values.pair.size:
        progress(f"job {job.id}: drawing distributions...")
        parts.append(distributions_section(values))
        parts.append(correctness_section(engine, job, values, metric))
        parts.append(per_class_section(engine, job, metric, keys))
        progress(f"job {job.id}: drawing {2 * N_EXAMPLES} example figures...")
        parts.append(examples_section(engine, job, metric, keys, where, scope))
    return "\n".join(parts)


__all__ = [
    "AGREEMENT_METRICS",
    "DISAGREEMENT_METRICS",
    "disagreement_results",
    "glossary_section",
]
