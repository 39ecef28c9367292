"""Report sections of the faithfulness issue: deletion/insertion (tables, the mean curves per
method, the pair view) and the model-randomisation sanity check (per layer, verdicts, the
mean Spearman correlation as the layers are randomised). Empty for a job without such rows."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sqlalchemy import Engine, select

from xaiq.analysis.faithfulness import faithfulness_pairs, faithfulness_stats, sanity_stats
from xaiq.analysis.map_stats import map_property_stats
from xaiq.analysis.multiplicity import adjustment_note, for_display
from xaiq.db.models import Faithfulness
from xaiq.db.protocol import protocol_rows
from xaiq.report.format import img, table
from xaiq.report.sanity_maps import layer_maps_html
from xaiq.report.sources import load_artifact
from xaiq.xai.figures import literal, method_title

MAX_CURVES = 500  # curves read per method for the mean curve (the AUC tables use every row)


def _ci(row: dict[str, Any], prefix: str) -> str:
    mean, low, high = (row.get(f"{prefix}_{s}") for s in ("mean", "low", "high"))
    if mean is None:
        return "NULL"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]" if low is not None else f"{mean:.3f}"


def _mean_curves(engine: Engine, job_id: int) -> dict[str, np.ndarray]:
    """``{method: [2, T]}`` mean deletion and insertion curves of the pixel game."""
    with engine.connect() as conn:
        found = conn.execute(
            select(Faithfulness.method, Faithfulness.artifact, Faithfulness.checksum)
            .where(Faithfulness.job_id == job_id, Faithfulness.unit == "pixels")
            .order_by(Faithfulness.method, Faithfulness.sample_index)
        ).all()
    curves: dict[str, list[np.ndarray]] = {}
    for method, rel, checksum in found:
        got = curves.setdefault(method, [])
        if rel is None or len(got) >= MAX_CURVES:
            continue
        arr = load_artifact(rel, checksum)
        if arr is None or arr.ndim != 2 or arr.shape[0] != 2:
            continue
        if not got or arr.shape == got[0].shape:
            got.append(arr.astype(np.float64))
    return {m: np.mean(c, axis=0) for m, c in curves.items() if c}


def curves_figure(curves: dict[str, np.ndarray]) -> Figure:
    from xaiq.report.charts import OKABE_ITO

    fig = Figure(figsize=(10, 4.4))
    axes = fig.subplots(1, 2)
    for ax, k, title in (
        (axes[0], 0, "Deletion (lower: more faithful)"),
        (axes[1], 1, "Insertion (higher: more faithful)"),
    ):
        for i, (method, c) in enumerate(curves.items()):
            x = np.linspace(0, 1, c.shape[1])
            auc = (c[k].sum() - c[k, 0] / 2 - c[k, -1] / 2) / (c.shape[1] - 1)
            colour = OKABE_ITO[i % len(OKABE_ITO)]
            ax.plot(x, c[k], color=colour, label=literal(f"{method_title(method)} (AUC {auc:.3f})"))
        ax.set_title(title)
        ax.set_xlabel("fraction of pixels removed" if k == 0 else "fraction of pixels restored")
        ax.set_ylabel("probability of the explained class")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def faithfulness_section(engine: Engine, job: Any) -> str:
    rows = faithfulness_stats(engine, [job.id], ["method"])
    if not rows:
        return ""
    for r in rows:
        r["deletion AUC [95% CI]"] = _ci(r, "deletion")
        r["insertion AUC [95% CI]"] = _ci(r, "insertion")
        r["insertion - deletion"] = _ci(r, "score")
        r["deletion vs random"] = _ci(r, "deletion_vs_random")
        r["insertion vs random"] = _ci(r, "insertion_vs_random")
        r["deletion LeRF - MoRF"] = _ci(r, "deletion_gap")
        r["insertion MoRF - LeRF"] = _ci(r, "insertion_gap")
    cols = [
        "method",
        "unit",
        "n_segments",
        "n",
        "nulls",
        "deletion AUC [95% CI]",
        "insertion AUC [95% CI]",
        "insertion - deletion",
        "deletion vs random",
        "insertion vs random",
        "deletion LeRF - MoRF",
        "insertion MoRF - LeRF",
    ]
    parts = [
        "<h2>Faithfulness: deletion and insertion</h2>",
        '<p class="note">The RISE paper\'s causal metrics: pixels (or superpixels) are removed '
        "in decreasing order of attribution (deletion) or restored into a blurred copy "
        "(insertion); the curve is the probability of the explained class. "
        "<b>vs random</b>: the method's AUC minus the AUC of a random pixel order on the same "
        "sample (paired mean, 95% interval; deletion below 0 and insertion above 0 beat "
        "chance). <b>LeRF - MoRF</b> (deletion) and <b>MoRF - LeRF</b> (insertion): the "
        "least-relevant-first game against the most-relevant-first one (above 0: the order "
        "carries information). Protocol: the card below.</p>",
        table(rows, cols),
    ]
    props = map_property_stats(engine, [job.id])
    if props:
        for r in props:
            r["sparseness (Gini) [95% CI]"] = _ci(r, "sparseness")
            r["complexity (entropy) [95% CI]"] = _ci(r, "complexity")
        parts.append("<h3>Map properties: sparseness and complexity</h3>")
        parts.append(
            '<p class="note">As Quantus defines them: the Gini index of |map| (higher: '
            "sparser) and the entropy of |map| / sum |map| (higher: more spread), with their "
            "Spearman correlation with the insertion - deletion score across samples (is the "
            "more faithful map just the blurrier one?). Pixel maps; an all-zero map has "
            "neither (nulls).</p>"
        )
        mcols = [
            "model",
            "method",
            "n",
            "nulls",
            "sparseness (Gini) [95% CI]",
            "complexity (entropy) [95% CI]",
            "rho_sparseness_score",
            "rho_complexity_score",
        ]
        parts.append(table(props, mcols))
    curves = _mean_curves(engine, job.id)
    if curves:
        parts.append(img(curves_figure(curves), "mean deletion and insertion curves"))
    pairs = faithfulness_pairs(engine, [job.id])
    if pairs:
        parts.append("<h3>Which of two disagreeing maps is more faithful</h3>")
        parts.append(
            '<p class="note">Per pair: the share of samples where A\'s map has the higher '
            "insertion - deletion score (Wilson 95% interval), and the Spearman correlation "
            "between the pair's feature disagreement and the gap between their scores.</p>"
        )
        pcols = [
            "method_a",
            "method_b",
            "superpixels",
            "n_segments",
            "k_frac",
            "n",
            "a_more_faithful",
            "a_low",
            "a_high",
            "mean_gap",
            "rho_disagreement_gap",
            "p_value",
        ]
        tests = sum(1 for r in pairs if r["p_value"] is not None)
        shown, pcols = for_display(pairs, pcols, "holm", tests)
        parts.append(
            f'<p class="note">Spearman {adjustment_note("holm", tests)}.</p>' + table(shown, pcols)
        )
    return "\n".join(parts)


def sanity_figure(per_layer: list[dict[str, Any]], threshold: float | None) -> Figure:
    """Mean Spearman |map| (trained vs randomised) per layer with its 95% band, one line per
    method, the verdict's threshold as a dashed line, the legend below the axes."""
    from xaiq.report.charts import OKABE_ITO

    fig = Figure(figsize=(8, 4.6))
    ax = fig.subplots()
    keys = list(dict.fromkeys((r["method"], r["mode"]) for r in per_layer))
    markers = "osD^vP*X"
    for i, (method, mode) in enumerate(keys):
        rows = [r for r in per_layer if r["method"] == method and r["mode"] == mode]
        x = [r["layer_order"] for r in rows]

        def col(name: str, rows: list[dict[str, Any]] = rows) -> np.ndarray:
            return np.array([np.nan if r[name] is None else r[name] for r in rows])

        colour = OKABE_ITO[i % len(OKABE_ITO)]
        ax.plot(
            x,
            col("spearman_abs_mean"),
            marker=markers[i % len(markers)],
            color=colour,
            label=literal(f"{method_title(method)} ({mode})"),
        )
        ax.fill_between(
            x, col("spearman_abs_low"), col("spearman_abs_high"), alpha=0.15, color=colour
        )
        ax.set_xticks(x, [literal(r["layer"]) for r in rows], rotation=30, fontsize=8)
    if threshold is not None:
        ax.axhline(threshold, color="black", lw=1.2, ls="--")
        ax.text(
            ax.get_xlim()[0],
            threshold + 0.02,
            f" threshold {threshold:g}: pass below",
            fontsize=8,
            va="bottom",
        )
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylim(-0.2, 1.02)
    ax.set_xlabel("randomised down to layer (from the logits)", fontsize=9)
    ax.set_ylabel("Spearman |map| trained vs random", fontsize=9)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=3, frameon=False)
    fig.tight_layout()
    return fig


def sanity_section(engine: Engine, job: Any) -> str:
    per_layer, verdicts = sanity_stats(engine, [job.id])
    if not per_layer:
        return ""
    for r in per_layer:
        r["Spearman |map| [95% CI]"] = _ci(r, "spearman_abs")
        r["Spearman signed"] = _ci(r, "spearman_signed")
        r["SSIM"] = _ci(r, "ssim")
    cols = [
        "method",
        "mode",
        "layer_order",
        "layer",
        "n",
        "Spearman |map| [95% CI]",
        "Spearman signed",
        "SSIM",
    ]
    vcols = [
        "method",
        "mode",
        "layers",
        "last_layer",
        "n",
        "spearman_abs_mean",
        "spearman_abs_high",
        "spearman_signed_mean",
        "threshold",
        "verdict",
    ]
    return "\n".join(
        [
            "<h2>Sanity check: model randomisation</h2>",
            '<p class="note">Adebayo et al. (2018): the layers are re-initialised from the '
            "logits down; a map that stays rank-correlated with the trained model's map does "
            "not depend on what the model learned and fails.</p>",
            table(verdicts, vcols),
            img(
                sanity_figure(per_layer, verdicts[0]["threshold"] if verdicts else None),
                "Spearman correlation per randomised layer",
            ),
            table(per_layer, cols),
            layer_maps_html(engine, job),
        ]
    )


def faith_sections(engine: Engine, job: Any) -> str:
    """Both sections (HTML; empty when the job has neither kind of row)."""
    return faithfulness_section(engine, job) + sanity_section(engine, job)


__all__ = ["faith_sections"]


def protocol_note(job_id: int | str) -> str:
    """The sentence above a protocol card (HTML), in the report and in ``xaiq serve``."""
    return (
        "What the numbers of this job mean: the settings it was run with and, per worker"
        " runtime, the device, library versions and the sha256 of the model weights"
        f" (<code>xaiq export {html.escape(str(job_id))} --what protocol</code> writes it)."
    )


def protocol_section(job: Any) -> str:
    """The job's protocol card as a field/value table (nothing for a job without one)."""
    card = getattr(job, "protocol", None)
    if not card:
        return ""
    return "\n".join(
        [
            "<h2>Protocol card</h2>",
            f'<p class="note">{protocol_note(getattr(job, "id", "JOB"))}</p>',
            table(protocol_rows(card), ["field", "value"]),
        ]
    )
