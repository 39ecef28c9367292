"""Self-contained HTML reports: every picture an embedded base64 PNG data URI, every text
escaped, no external resource referenced.

One job reads like a results section (:mod:`xaiq.report.results_section` for disagreement
jobs): summary with intervals, glossary, tables, distributions per configuration,
correctness and confidence, per class, ranked examples, the job's details and its spec
folded at the end. Two disagreement jobs (``xaiq report 1 3``) open with their comparison
(:mod:`xaiq.report.compare_section`: every metric, pair and configuration both have, paired
by sample where they share images, p-values Holm-adjusted); more jobs open with a
side-by-side table of the headline metric. Each job's own report follows.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from xaiq.analysis.glossary import GLOSSARY
from xaiq.analysis.grouping import resolve_grouping
from xaiq.analysis.intervals import wilson_interval
from xaiq.analysis.queries import (
    ATTACK_COLUMNS,
    attack_stats,
    disagreement_stats,
    success_label,
)
from xaiq.db.files import atomic_output
from xaiq.db.models import JobKind
from xaiq.report import charts, data, plots
from xaiq.report.attack_guides import guides_section
from xaiq.report.format import ci_text, img, num, progress, table
from xaiq.report.results_section import (
    config_keys,
    disagreement_results,
    glossary_section,
    rank_where,
)
from xaiq.report.sources import load_artifact, original_input
from xaiq.xai.figures import model_title

HEADLINE_METRIC = "feature_disagreement"  # the source document's first metric
N_EXAMPLES = 3
N_ATTACK_EXAMPLES = 4

STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; }
.job { max-width: 1360px; }
.side { display: grid; gap: 28px; align-items: start; }
table { border-collapse: collapse; margin: 8px 0 18px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f0f0f0; }
td.k { text-align: left; }
td.nw { white-space: nowrap; }
pre { background: #f6f6f6; padding: 8px; font-size: 12px; overflow-x: auto; }
img { max-width: 100%; display: block; margin: 6px 0 2px; }
.fig { margin: 4px 0 14px; max-width: 100%; overflow-x: auto; }
.figrow { display: flex; flex-wrap: wrap; gap: 6px 18px; align-items: flex-start; }
input.zoom { display: none; }
label { cursor: zoom-in; }
label.full { font-size: 12px; color: #0072b2; text-decoration: underline; }
input.zoom:checked + label { position: fixed; inset: 0; z-index: 10; overflow: auto;
  background: rgba(255, 255, 255, 0.97); cursor: zoom-out; padding: 12px; }
input.zoom:checked + label img { max-width: none; min-width: 0 !important; }
table.verdict { font-size: 14px; }
table.verdict td:first-child { font-weight: bold; }
table.verdict td { white-space: normal; min-width: 5.5em; }
p.caption { font-weight: bold; font-size: 14px; margin: 1em 0 0.3em; }
p.verdict { font-size: 15px; line-height: 1.45; max-width: 1100px; background: #f4f7fb;
  border-left: 4px solid #0072b2; padding: 8px 12px; }
.note { color: #666; font-size: 13px; }
.wide { overflow-x: auto; max-width: 100%; }
table.cmp td { white-space: nowrap; }
table.cmp th { white-space: normal; min-width: 4em; }
h2.compare { max-width: 1300px; }
li { margin: 3px 0; }
"""


def build_report(
    engine: Engine,
    job_ids: int | Iterable[int],
    out: str | Path,
    *,
    metric: str = HEADLINE_METRIC,
    rank_at: str | dict[str, str] | None = None,
) -> Path:
    """Write the report of one job, or of several side by side, to ``out``; return its path.

    ``metric``: the headline metric (examples, correctness and per-class views);
    ``rank_at``: the configuration the examples are ranked at (``n_segments=49,k_frac=0.25``;
    default: :func:`xaiq.report.rank_config.choose_config`'s). Raises
    :class:`NotFoundError` for an unknown job and :class:`QueryError` for an unknown metric
    or configuration, before writing anything."""
    from xaiq.db.errors import QueryError
    from xaiq.report.rank_config import parse_rank_at

    if metric not in GLOSSARY:
        raise QueryError(f"unknown metric {metric!r}; known: {', '.join(GLOSSARY)}")
    wanted = parse_rank_at(rank_at) if isinstance(rank_at, str | None) else dict(rank_at)
    ids = [int(job_ids)] if isinstance(job_ids, int) else [int(j) for j in job_ids]
    jobs = [data.get_job(engine, j) for j in ids]
    for job in jobs:  # a bad --rank-at fails before any picture is drawn
        if wanted and job.kind == JobKind.disagreement:
            keys, _ = config_keys(engine, job.id)
            rank_where(engine, job, metric, keys, wanted)
    sections = [
        _job_report(engine, job, metric, glossary=len(jobs) == 1, rank_at=wanted) for job in jobs
    ]
    if len(jobs) == 1:
        body = f'<div class="job">{sections[0]}</div>'
        title = f"xaiq report: job {jobs[0].id}"
    else:
        # the headline table compares the jobs; then each job's verdict and evidence follow
        # at the page's full width (columns would shrink every figure below readable size)
        both = [j for j in jobs if j.kind == JobKind.disagreement]
        if len(jobs) == 2 and len(both) == 2:
            from xaiq.report.compare_section import comparison_section

            progress(f"comparing job {jobs[0].id} with job {jobs[1].id}...")
            head = comparison_section(engine, jobs[0].id, jobs[1].id) + glossary_section()
        else:
            head = _side_by_side(engine, jobs, metric)
        body = head + (
            '<div class="side">' + "".join(f"<div>{s}</div>" for s in sections) + "</div>"
        )
        title = "xaiq report: jobs " + ", ".join(str(j.id) for j in jobs)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        + body
        + f'<p class="note">generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC</p>'
        + "</body></html>\n"
    )
    path = Path(out)
    with atomic_output(path) as tmp:  # whole or nothing at ``out``
        tmp.write_text(page, encoding="utf-8")
    return path


def _job_report(
    engine: Engine,
    job: Any,
    metric: str,
    *,
    glossary: bool = True,
    rank_at: dict[str, str] | None = None,
) -> str:
    parts = [f"<h1>Job {job.id}: {html.escape(job.kind.value)}</h1>"]
    view = {"metric": metric, "glossary": glossary, "rank_at": rank_at}
    parts.append(KIND_SECTIONS[job.kind](engine, job, view))
    from xaiq.report.faith_section import protocol_section

    parts.append(protocol_section(job))
    parts.append(_details(engine, job))
    return "\n".join(parts)


def _disagreement_section(engine: Engine, job: Any, view: dict[str, Any]) -> str:
    from xaiq.report.faith_section import faith_sections

    results = disagreement_results(
        engine, job, view["metric"], glossary=view["glossary"], rank_at=view["rank_at"]
    )
    progress(f"job {job.id}: drawing the faithfulness and sanity figures...")
    return results + "\n" + faith_sections(engine, job)


def _side_by_side(engine: Engine, jobs: list[Any], metric: str) -> str:
    """Rows: pair and configuration keys of the disagreement jobs; one column per job with
    the headline metric's ``mean [95% CI] (n)``."""
    ids = [j.id for j in jobs if j.kind == JobKind.disagreement]
    if not ids:
        return ""
    # one column per job; rows aligned by pair and the configuration keys that vary inside
    # the jobs (the job-level ones, model, dataset and explained class, are the columns)
    grouping = resolve_grouping(
        engine, ids, ["pair", "job"], exclude=("model", "dataset", "target")
    )
    rows = disagreement_stats(engine, ids, grouping.keys, [metric])
    group = [k for k in grouping.keys if k != "job"]
    merged: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        row = merged.setdefault(
            tuple(r[k] for k in group),
            {**{k: r[k] for k in group}, "pair": charts.pair_title(r["pair"])},
        )
        cell = "NULL" if r["mean"] is None else f"{num(r['mean'])} {ci_text(r)}"
        row[f"job {r['job']}"] = f"{cell} (n={r['n']})"
    cols = [*group, *(f"job {j}" for j in ids)]
    for row in merged.values():  # a configuration one job does not have is not a NULL
        for c in cols[len(group) :]:
            row.setdefault(c, "— (not in this job)")
    heads = "; ".join(
        f"job {j.id}: {model_title(j.model)} on {j.dataset}"
        + (f", target {(j.spec or {}).get('target')}" if (j.spec or {}).get("target") else "")
        for j in jobs
        if j.kind == JobKind.disagreement
    )
    info = GLOSSARY[metric]
    return (
        f"<h2>Side by side: {html.escape(info.title)}</h2>"
        f'<p class="note">{html.escape(heads)}. mean [95% interval] (n); range'
        f" {info.range_text}, {info.agreement_when} = the maps agree</p>"
        + table(list(merged.values()), cols)
        + glossary_section()
    )


def _details(engine: Engine, job: Any) -> str:
    counts = data.job_counts(engine, job.id)
    info = {
        "kind": job.kind.value,
        "status": job.status.value,
        "model": job.model,
        "dataset": job.dataset,
        "samples stored": counts["samples"],
        "model correct": counts["correct"],
        "sample errors": counts["sample_errors"],
        "created": job.created_at,
        "finished": job.finished_at,
    }
    rows = [{"key": k, "value": "" if v is None else str(v)} for k, v in info.items()]
    spec = html.escape(json.dumps(job.spec, indent=2, sort_keys=True, default=str))
    return (
        "<h2>Job details</h2>"
        + table(rows, ["key", "value"])
        + f"<details><summary>Spec (JSON)</summary><pre>{spec}</pre></details>"
    )


def _attack_section(engine: Engine, job: Any, view: dict[str, Any]) -> str:
    attack = (job.spec or {}).get("attack") or {}
    progress(f"job {job.id}: reading attack rows...")
    out = ["<h2>Attack</h2>"]
    if attack.get("compare"):
        # a --compare job is about the strategies: their own table and curves come first
        out.append(guides_section(engine, job, calibration=False))
        out.append(
            '<h3>Per sample (the first listed strategy that succeeded)</h3><p class="note">'
            "every strategy attacked every sample from the original; the rows below credit"
            " each sample to the first strategy in the spec's order that reached the goal.</p>"
        )
    elif len(attack.get("strategies") or []) > 1:
        out.append(
            '<p class="note">fallback chain '
            + html.escape(" → ".join(attack["strategies"]))
            + ": iterations and forward passes are chain totals (summed over the strategies"
            " tried).</p>"
        )
    for title, key in (("Summary", "job"), ("By true label", "label")):
        rows = attack_stats(engine, [job.id], [key])
        for r in rows:
            ci = wilson_interval(r["successes"], r["n"])
            r["success 95% CI"] = "" if ci is None else f"[{num(ci[0])}, {num(ci[1])}]"
        cols = [key, "n", "successes", "success_rate", "success 95% CI", *ATTACK_COLUMNS[3:]]
        out.append(f"<h3>{title}</h3>" + table(rows, cols))
    out.append(
        '<p class="note">successes: the goal reached with a final image inside the model\'s'
        " input domain (Wilson score 95% interval); successes_out_of_domain: reached only with"
        " pixels outside it (an unclamped search) or not checked</p>"
    )
    rows = data.attack_rows(engine, job.id)
    if not rows:
        return "\n".join(out)
    out.append(img(plots.attack_summary_figure(rows), "attack outcomes"))
    out.append(guides_section(engine, job, strategies=not attack.get("compare")))
    ok = [r for r in rows if r["success"]][:N_ATTACK_EXAMPLES]
    failed = [r for r in rows if not r["success"]][: max(1, N_ATTACK_EXAMPLES // 2)]
    progress(f"job {job.id}: drawing {len(ok) + len(failed)} before / after figures...")
    out.append("<h3>Before / after examples</h3>")
    for r in ok + failed:
        final = load_artifact(r["artifact"], r["checksum"])
        head = (
            f"sample {r['sample_index']}: {success_label(r['success'], r['out_of_domain'])}"
            f" ({r['strategy'] or '-'}), p {r['prob_before']:.3f} -> {r['prob_after']:.3f},"
            f" pred {r['pred_before']} -> {r['pred_after']}, L0 {r['l0']}"
        )
        if final is None:
            out.append(f'<p class="note">{html.escape(head)}: final image unavailable</p>')
            continue
        original = original_input(job.dataset, job.model, r["sample_index"])
        out.append(img(plots.attack_figure(original, final, head), head))
    return "\n".join(out)


def _attribution_section(engine: Engine, job: Any, view: dict[str, Any]) -> str:
    from xaiq.db.errors import NotFoundError
    from xaiq.report.show import sample_map_figure

    progress(f"job {job.id}: drawing {N_EXAMPLES} example figures...")
    out = ["<h2>Attribution examples</h2>"]
    for idx in data.sample_indices(engine, job.id, N_EXAMPLES):
        try:
            out.append(img(sample_map_figure(engine, job, idx), f"sample {idx}"))
        except NotFoundError:
            out.append(f'<p class="note">sample {idx}: no attribution maps available</p>')
    return "\n".join(out)


def sample_block(engine: Engine, job: Any, idx: int, what: str) -> str:
    """One sample's figure as the report embeds it (kept for callers and tests)."""
    from xaiq.db.errors import NotFoundError
    from xaiq.report.show import sample_map_figure

    try:
        fig = sample_map_figure(engine, job, idx, what=what)
    except NotFoundError:
        return f'<p class="note">sample {idx}: no attribution maps available</p>'
    return img(fig, f"sample {idx} {what}")


# what a job's report shows, per job kind (one entry per kind of xaiq.scheduler.kinds)
KIND_SECTIONS: dict[JobKind, Callable[[Engine, Any, dict[str, Any]], str]] = {
    JobKind.attribution: _attribution_section,
    JobKind.disagreement: _disagreement_section,
    JobKind.attack: _attack_section,
}
