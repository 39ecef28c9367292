"""The attack report's guide comparison and the model's calibration (issue 16).

- success rate against iterations, one curve per strategy (the share of the samples a
  strategy attacked that had reached the goal by iteration ``i``), from the per-strategy
  rows' ``first_success_iter``;
- the per-strategy table (rate, Wilson interval, median iterations and forward passes);
- the job's expected calibration error and reliability diagram over every labelled sample
  (``samples.prob_pred`` is the model's confidence, ``samples.correct`` its accuracy):
  ``ECE = sum_b (n_b / N) |accuracy_b - confidence_b|`` over ``n_bins`` equal-width bins of
  confidence in [0, 1] (the last bin closed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sqlalchemy import Engine, select  # noqa: E402

from xaiq.analysis.attack_strategies import strategy_stats, success_curves  # noqa: E402
from xaiq.db.models import SampleRow  # noqa: E402
from xaiq.report.format import img, table  # noqa: E402
from xaiq.xai.figures import literal  # noqa: E402

N_BINS = 10


def calibration(
    confidence: Sequence[float], correct: Sequence[bool], n_bins: int = N_BINS
) -> dict[str, Any]:
    """``ece`` (None without samples) and per bin ``count``, ``confidence`` (mean) and
    ``accuracy`` (None for an empty bin), with the bin ``edges``."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    sum_conf = np.bincount(which, weights=conf, minlength=n_bins)
    sum_ok = np.bincount(which, weights=ok, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf, acc = sum_conf / counts, sum_ok / counts
    n = int(conf.size)
    ece = float(np.sum(counts[counts > 0] / n * np.abs(acc - mean_conf)[counts > 0])) if n else None
    return {
        "ece": ece,
        "n": n,
        "edges": edges.tolist(),
        "count": counts.tolist(),
        "confidence": [
            None if c == 0 else float(v) for c, v in zip(counts, mean_conf, strict=True)
        ],
        "accuracy": [None if c == 0 else float(v) for c, v in zip(counts, acc, strict=True)],
    }


def job_calibration(engine: Engine, job_id: int, n_bins: int = N_BINS) -> dict[str, Any]:
    """:func:`calibration` over the job's labelled samples."""
    stmt = select(SampleRow.prob_pred, SampleRow.correct).where(
        SampleRow.job_id == job_id, SampleRow.correct.is_not(None)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return calibration([r[0] for r in rows], [bool(r[1]) for r in rows], n_bins)


def reliability_figure(cal: dict[str, Any]) -> Figure:
    """Accuracy per confidence bin against the diagonal, with the bin counts."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    edges = np.asarray(cal["edges"])
    centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    acc = [np.nan if a is None else a for a in cal["accuracy"]]
    ax1.bar(centres, acc, width=width * 0.9, color="tab:blue", label="accuracy")
    ax1.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="perfect calibration")
    ax1.set_xlabel("confidence (top softmax probability)", fontsize=8)
    ax1.set_ylabel("accuracy", fontsize=8)
    ece = "n/a" if cal["ece"] is None else f"{cal['ece']:.3f}"
    ax1.set_title(f"reliability diagram (ECE {ece}, {cal['n']} samples)", fontsize=9)
    ax1.set_xlim(0, 1)
    ax1.set_ylim(0, 1)
    ax1.legend(fontsize=7, loc="upper left")
    ax2.bar(centres, cal["count"], width=width * 0.9, color="tab:gray")
    ax2.set_yscale("symlog", linthresh=1)
    ax2.set_xlabel("confidence", fontsize=8)
    ax2.set_title("samples per bin", fontsize=9)
    fig.tight_layout()
    return fig


def success_curve_figure(curves: dict[str, list[tuple[int, float]]]) -> Figure:
    """One step curve per strategy: share of its attacked samples at the goal by iteration."""
    from xaiq.report.charts import OKABE_ITO

    fig, ax = plt.subplots(figsize=(8, 4.6))
    styles = ("-", "--", "-.", ":")
    for i, (name, steps) in enumerate(curves.items()):
        its, share = zip(*steps, strict=True)
        ax.step(
            its,
            share,
            where="post",
            label=literal(name),
            color=OKABE_ITO[i % len(OKABE_ITO)],
            ls=styles[i // len(OKABE_ITO) % len(styles)],
            lw=1.8,
        )
    ax.set_xscale("symlog", linthresh=10)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("iterations (symlog)", fontsize=8)
    ax.set_ylabel("success rate", fontsize=8)
    ax.set_title("success rate against iterations, per strategy", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
    fig.tight_layout()
    return fig


STRATEGY_TABLE = (
    "strategy",
    "n",
    "successes",
    "success rate [95% CI]",
    "median_first_success_iter",
    "median_iterations",
    "median_forward_passes",
    "median_grad_norm_logprob",
    "median_confidence",
)


def guides_section(
    engine: Engine, job: Any, *, strategies: bool = True, calibration: bool = True
) -> str:
    """The HTML of the per-strategy comparison and the calibration of the job's model."""
    from xaiq.report.format import num

    out = []
    rows = strategy_stats(engine, [job.id], ["strategy"]) if strategies else []
    if rows:
        for r in rows:
            ci = "" if r["success_low"] is None else f" [{num(r['success_low'])}, "
            ci += "" if r["success_high"] is None else f"{num(r['success_high'])}]"
            r["success rate [95% CI]"] = f"{num(r['success_rate'])}{ci}"
        out.append(
            "<h3>Per strategy (each strategy's own attacks, Wilson 95% intervals)</h3>"
            '<p class="note">median_first_success_iter: over the successes;'
            " median_iterations and median_forward_passes: the cost over every attempt.</p>"
        )
        out.append(table(rows, list(STRATEGY_TABLE)))
        max_iters = (job.spec or {}).get("attack", {}).get("max_iters")
        curves = success_curves(engine, [job.id], max_iters)
        out.append(img(success_curve_figure(curves), "success rate against iterations"))
    cal = job_calibration(engine, job.id) if calibration else {"n": 0}
    if cal["n"]:
        out.append("<h3>Calibration of the model on this job's samples</h3>")
        out.append(img(reliability_figure(cal), "reliability diagram"))
    return "\n".join(out)
