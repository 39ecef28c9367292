"""One self-contained HTML page per job: every picture is an embedded base64 PNG data URI,
every text is escaped, no external resource is referenced."""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from xaiq.db.errors import NotFoundError
from xaiq.db.models import METRIC_COLUMNS, JobKind
from xaiq.db.queries import (
    ATTACK_COLUMNS,
    DEFAULT_METRICS,
    attack_stats,
    disagreement_stats,
    varying_config_keys,
)
from xaiq.db.summary import STAT_COLUMNS
from xaiq.report import data, plots
from xaiq.report.sources import load_artifact, original_input

RANK_METRIC = "euclidean"  # continuous, so the most/least ranking has few ties
N_EXAMPLES = 3
N_ATTACK_EXAMPLES = 4

_CSS = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1300px; }
table { border-collapse: collapse; margin: 8px 0 18px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f0f0f0; }
td.k { text-align: left; }
pre { background: #f6f6f6; padding: 8px; font-size: 12px; overflow-x: auto; }
img { max-width: 100%; display: block; margin: 6px 0 16px; }
.note { color: #666; font-size: 13px; }
.wide { overflow-x: auto; }
"""


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _table(rows: Sequence[Mapping[str, Any]], cols: Sequence[str]) -> str:
    if not rows:
        return '<p class="note">no rows</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="k">{_cell(r.get(c))}</td>'
            if isinstance(r.get(c), str)
            else f"<td>{_cell(r.get(c))}</td>"
            for c in cols
        )
        + "</tr>"
        for r in rows
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="wide">{table}</div>'


def _img(fig: Any, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="{plots.data_uri(plots.png_bytes(fig))}">'


def build_report(engine: Engine, job_id: int, out: str | Path) -> Path:
    """Write the report of job ``job_id`` to ``out`` and return its path.

    Sections: the job and its spec; counts; for disagreement jobs the per-pair statistics
    (default metrics), the method x method matrix of mean disagreement for every metric,
    histograms per pair, and the most / least disagreeing samples (mean ``euclidean`` over
    pairs) with overlays; for attack jobs the success summary and before/after examples.
    """
    job = data.get_job(engine, job_id)
    parts = [f"<h1>xaiq report: job {job.id}</h1>", _job_section(engine, job)]
    if job.kind == JobKind.disagreement:
        parts.append(_disagreement_section(engine, job))
    if job.kind == JobKind.attack:
        parts.append(_attack_section(engine, job))
    if job.kind == JobKind.attribution:
        parts.append(_attribution_section(engine, job))
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>xaiq job {job.id}</title><style>{_CSS}</style></head><body>"
        + "\n".join(parts)
        + f'<p class="note">generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC</p>'
        + "</body></html>\n"
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def _job_section(engine: Engine, job: Any) -> str:
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
    return "<h2>Job</h2>" + _table(rows, ["key", "value"]) + f"<h3>Spec</h3><pre>{spec}</pre>"


def _disagreement_section(engine: Engine, job: Any) -> str:
    out = ["<h2>Disagreement</h2>"]
    keys = ["pair", *varying_config_keys(engine, [job.id])]
    stats = disagreement_stats(engine, [job.id], keys, DEFAULT_METRICS)
    out.append("<h3>Per pair</h3>" + _table(stats, [*keys, "metric", *STAT_COLUMNS]))
    by_method = disagreement_stats(engine, [job.id], ["method_a", "method_b"], "all")
    means: dict[str, dict[tuple[str, str], float]] = {m: {} for m in METRIC_COLUMNS}
    for r in by_method:
        if r["mean"] is not None:
            means[r["metric"]][(r["method_a"], r["method_b"])] = r["mean"]
    methods = data.job_methods(job) or sorted(
        {r["method_a"] for r in by_method} | {r["method_b"] for r in by_method}
    )
    if any(means.values()):
        out.append(
            "<h3>Mean disagreement, method &times; method</h3>"
            '<p class="note">mean over every sample and superpixel configuration of'
            " the job; NULLs excluded</p>"
        )
        out.append(_img(plots.matrix_figure(means, methods), "method x method matrices"))
        values = data.pair_values(engine, job.id, list(DEFAULT_METRICS))
        out.append(
            "<h3>Histograms per pair</h3>"
            '<p class="note">all samples and superpixel configurations of the job</p>'
        )
        out.append(_img(plots.histogram_figure(values, list(DEFAULT_METRICS)), "histograms"))
        most, least = data.ranked_samples(engine, job.id, RANK_METRIC, N_EXAMPLES)
        for title, ranked in (("Most", most), ("Least", least)):
            out.append(f"<h3>{title} disagreeing samples (mean {RANK_METRIC} over pairs)</h3>")
            out += [
                _sample_block(engine, job, idx, f"mean {RANK_METRIC} {v:.3f}") for idx, v in ranked
            ]
    return "\n".join(out)


def _sample_block(engine: Engine, job: Any, idx: int, what: str) -> str:
    from xaiq.report.show import sample_map_figure

    try:
        fig = sample_map_figure(engine, job, idx, what=what)
    except NotFoundError:
        return f'<p class="note">sample {idx}: no attribution maps available</p>'
    return _img(fig, f"sample {idx} {what}")


def _attack_section(engine: Engine, job: Any) -> str:
    out = ["<h2>Attack</h2>"]
    summary = attack_stats(engine, [job.id], ["job"])
    out.append(_table(summary, ["job", *ATTACK_COLUMNS]))
    by_label = attack_stats(engine, [job.id], ["label"])
    out.append("<h3>By true label</h3>" + _table(by_label, ["label", *ATTACK_COLUMNS]))
    rows = data.attack_rows(engine, job.id)
    if not rows:
        return "\n".join(out)
    out.append(_img(plots.attack_summary_figure(rows), "attack outcomes"))
    ok = [r for r in rows if r["success"]][:N_ATTACK_EXAMPLES]
    failed = [r for r in rows if not r["success"]][: max(1, N_ATTACK_EXAMPLES // 2)]
    out.append("<h3>Before / after examples</h3>")
    for r in ok + failed:
        final = load_artifact(r["artifact"], r["checksum"])
        head = (
            f"sample {r['sample_index']}: {'success' if r['success'] else 'failed'}"
            f" ({r['strategy'] or '-'}), p {r['prob_before']:.3f} -> {r['prob_after']:.3f},"
            f" pred {r['pred_before']} -> {r['pred_after']}, L0 {r['l0']}"
        )
        if final is None:
            out.append(f'<p class="note">{html.escape(head)}: final image unavailable</p>')
            continue
        original = original_input(job.dataset, job.model, r["sample_index"])
        out.append(_img(plots.attack_figure(original, final, head), head))
    return "\n".join(out)


def _attribution_section(engine: Engine, job: Any) -> str:
    rows = data.sample_indices(engine, job.id, N_EXAMPLES)
    out = ["<h2>Attribution examples</h2>"]
    out += [_sample_block(engine, job, idx, "") for idx in rows]
    return "\n".join(out)
