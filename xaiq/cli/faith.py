"""``stats faithfulness`` (per method, and ``--pairs``: the joined pair view) and
``stats sanity``: the read side of deletion/insertion and the model-randomisation check."""

from __future__ import annotations

from typing import Any

import typer

from xaiq.cli.errors import CliError
from xaiq.cli.options import FormatOption, JobsOption, JsonFlag, output_format, selected_jobs
from xaiq.cli.output import OutputFormat, emit, info
from xaiq.cli.query import AdjustOpt, human_format, stats_app


def _engine() -> Any:
    from xaiq.db.session import get_engine

    return get_engine()


_METHOD_COLUMNS = [
    "n",
    "nulls",
    "deletion_mean",
    "deletion_low",
    "deletion_high",
    "insertion_mean",
    "insertion_low",
    "insertion_high",
    "score_mean",
    "score_low",
    "score_high",
    "n_random",
    "deletion_random_mean",
    "deletion_vs_random_mean",
    "deletion_vs_random_low",
    "deletion_vs_random_high",
    "insertion_random_mean",
    "insertion_vs_random_mean",
    "insertion_vs_random_low",
    "insertion_vs_random_high",
    "n_lerf",
    "deletion_lerf_mean",
    "insertion_lerf_mean",
    "deletion_gap_mean",
    "deletion_gap_low",
    "deletion_gap_high",
    "insertion_gap_mean",
    "insertion_gap_low",
    "insertion_gap_high",
    "sparseness_mean",
    "complexity_mean",
]
# the terminal table: the AUCs, each against chance (method - random) and the LeRF gap
_TABLE_COLUMNS = [
    "n",
    "deletion_mean",
    "deletion_vs_random_mean",
    "deletion_vs_random_low",
    "deletion_vs_random_high",
    "deletion_gap_mean",
    "insertion_mean",
    "insertion_vs_random_mean",
    "insertion_vs_random_low",
    "insertion_vs_random_high",
    "insertion_gap_mean",
]
_PAIR_COLUMNS = [
    "job",
    "method_a",
    "method_b",
    "superpixels",
    "n_segments",
    "k_frac",
    "n",
    "a_more_faithful",
    "a_low",
    "a_high",
    "b_more_faithful",
    "mean_gap",
    "rho_disagreement_gap",
    "p_value",
    "p_adjusted",
]


@stats_app.command("faithfulness")
def stats_faithfulness(
    job: JobsOption = None,
    group_by: list[str] | None = typer.Option(
        None,
        "--group-by",
        "-g",
        help="comma-separated: method, model, job, target, order, substrate, ties, kernel,"
        " label, pred, correct, dataset (default: method); unit and n_segments are always"
        " added",
    ),
    pairs: bool = typer.Option(
        False,
        "--pairs",
        help="the joined pair view: per method pair, the share of samples where A is more"
        " faithful than B and the correlation of their disagreement with the faithfulness gap",
    ),
    metric: str = typer.Option(
        "feature_disagreement", "--metric", "-M", help="--pairs: the disagreement metric"
    ),
    by: str = typer.Option(
        "score",
        "--by",
        help="--pairs: score (insertion - deletion), deletion (lower wins) or insertion",
    ),
    unit: str = typer.Option(
        "pixels", "--unit", help="--pairs: pixels, or superpixels (the pair's own configuration)"
    ),
    adjust: str = AdjustOpt,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """Deletion and insertion AUCs (the RISE paper's causal metrics) per method: n, mean
    with its 95% Student-t interval, median; score = insertion - deletion (higher: more
    faithful). Each AUC is read against chance: vs_random = method - the random-order
    baseline of the same samples (paired; deletion below 0 and insertion above 0 beat
    chance). gap: deletion LeRF - MoRF, insertion MoRF - LeRF (above 0: the order carries
    information). The table shows these; --format csv/json every column. Games over pixels
    and over each superpixel configuration are separate rows."""
    from xaiq.analysis.faithfulness import faithfulness_pairs, faithfulness_stats

    out_fmt = output_format(fmt, as_json)
    jobs = selected_jobs(job)
    rows: list[dict[str, Any]]
    if pairs:
        from xaiq.analysis.multiplicity import adjustment_note, check_adjust, for_display

        method = check_adjust(adjust)
        rows = faithfulness_pairs(
            _engine(), jobs, metric=metric, criterion=by, unit=unit, adjust=method
        )
        columns = [*_PAIR_COLUMNS[:11], f"{metric}_mean", *_PAIR_COLUMNS[11:]]
        tests = sum(1 for r in rows if r["p_value"] is not None)
        title = f"which map is more faithful ({by}, {unit}) vs {metric}"
        title += f" — Spearman {adjustment_note(method, tests)}"
        if human_format(out_fmt):
            rows, columns = for_display(rows, columns, method, tests)
    else:
        keys = group_by if group_by is not None else ["method"]
        rows = faithfulness_stats(_engine(), jobs, keys)
        # the groups: the keys asked for, any configuration key that varies, unit, n_segments
        shown = _TABLE_COLUMNS if human_format(out_fmt) else _METHOD_COLUMNS
        columns = [*list(rows[0])[: list(rows[0]).index("n")], *shown] if rows else []
        title = "deletion / insertion AUC, vs the random order and LeRF (95% intervals)"
    if not rows:
        info("no faithfulness rows match (submit a disagreement job with --faithfulness)")
        return
    emit(rows, out_fmt, title=title, columns=columns)


@stats_app.command("maps")
def stats_maps(
    job: JobsOption = None, fmt: FormatOption = OutputFormat.table, as_json: JsonFlag = False
) -> None:
    """Map properties per method, as Quantus defines them: sparseness (Gini index of |map|,
    higher: sparser) and complexity (entropy of |map| / sum |map|, higher: more spread),
    mean with its 95% interval, and their Spearman correlation with the faithfulness score
    across samples (is the more faithful map just the blurrier one?). From the pixel rows
    of disagreement jobs run with --faithfulness; an all-zero map has neither (nulls)."""
    from xaiq.analysis.map_stats import map_property_stats

    out_fmt = output_format(fmt, as_json)
    rows = map_property_stats(_engine(), selected_jobs(job))
    if not rows:
        info("no map properties match (submit a disagreement job with --faithfulness)")
        return
    cols = ["job", "model", "method", "n", "nulls"]
    for m in ("sparseness", "complexity"):
        cols += [f"{m}_mean", f"{m}_low", f"{m}_high"]
        cols += [] if human_format(out_fmt) else [f"{m}_median"]
    cols += ["rho_sparseness_score", "rho_complexity_score"]
    emit(rows, out_fmt, title="map sparseness and complexity (95% intervals)", columns=cols)


@stats_app.command("sanity")
def stats_sanity(
    job: JobsOption = None,
    threshold: float = typer.Option(
        0.5,
        "--threshold",
        help="a method passes when the 95% upper bound of its mean Spearman |map| correlation"
        " after the last randomisation step is below this",
    ),
    verdicts_only: bool = typer.Option(
        False, "--verdicts", help="only the verdict per method (csv/json print one table)"
    ),
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """Model-randomisation sanity check (Adebayo et al. 2018) per method and layer, from the
    logits down: mean Spearman correlation of |map| and of the signed map, SSIM and the rank
    correlation of superpixel means between the trained and the randomised model's maps,
    then one verdict per method (a map that survives randomisation fails)."""
    from xaiq.analysis.faithfulness import SANITY_MEASURES, sanity_stats

    out_fmt = output_format(fmt, as_json)
    jobs = selected_jobs(job)
    if not 0.0 < threshold <= 1.0:
        raise CliError(f"--threshold must be in (0, 1], got {threshold}")
    per_layer, verdicts = sanity_stats(_engine(), jobs, threshold=threshold)
    if not per_layer:
        info("no sanity-check rows match (submit a disagreement job with --sanity cascading)")
        return
    if out_fmt is OutputFormat.table:  # the interval of the headline measure only
        measures = ["spearman_abs_mean", "spearman_abs_low", "spearman_abs_high"]
        measures += [f"{m}_mean" for m in SANITY_MEASURES[1:]]
    else:
        measures = [f"{m}_{s}" for m in SANITY_MEASURES for s in ("n", "mean", "low", "high")]
    # n: the values the headline mean and its interval use (NULLs apart); csv/json carry
    # each measure's own n
    cols = ["job", "method", "mode", "layer_order", "layer", "n", "nulls", *measures]
    if not verdicts_only:
        emit(per_layer, out_fmt, title="sanity check per layer (95% intervals)", columns=cols)
        if out_fmt is not OutputFormat.table:
            return  # one document on stdout; --verdicts prints the other
    vcols = [
        "job",
        "method",
        "mode",
        "layers",
        "last_layer",
        "n",
        "nulls",
        "spearman_abs_mean",
        "spearman_abs_high",
        "spearman_signed_mean",
        "ssim_mean",
        "threshold",
        "verdict",
    ]
    emit(verdicts, out_fmt, title="sanity verdicts (a map that survives fails)", columns=vcols)
