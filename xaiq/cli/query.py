"""Read-side commands: ``stats disagreement``, ``stats attack``, ``export``, ``show``,
``report``; and :func:`print_demo_summary` for the end of ``make demo``.

No torch at module level: ``show`` and ``report`` import it only when an original image has
to be re-read through the model's preprocessing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from xaiq.cli.app import app
from xaiq.cli.errors import CliError
from xaiq.cli.limits import JOB_ID_MAX
from xaiq.cli.options import FormatOption, JobsOption, JsonFlag, output_format, selected_jobs
from xaiq.cli.output import OutputFormat, console, emit, info

stats_app = typer.Typer(help="Aggregate statistics over stored results.", no_args_is_help=True)
app.add_typer(stats_app, name="stats")

AdjustOpt = typer.Option(
    "holm",
    "--adjust",
    help="p-value adjustment over the table's tests: holm (family-wise error, default), bh"
    " (Benjamini-Hochberg, false discovery rate) or none; the title and the column say which",
)


def human_format(fmt: OutputFormat) -> bool:
    """A format read by people (a table), not parsed (csv, json): raw p-values stay in the
    parsed formats as ``p_value`` beside ``p_adjusted``."""
    return fmt.value not in ("csv", "json")


def _engine() -> Any:
    from xaiq.db.session import get_engine

    return get_engine()


@stats_app.command("disagreement")
def stats_disagreement(
    job: JobsOption = None,
    group_by: list[str] | None = typer.Option(
        None,
        "--group-by",
        "-g",
        help="comma-separated: pair, method_a, method_b, label, pred, correct, model, dataset,"
        " job, superpixels, n_segments, k_frac, target (default: pair); configuration keys"
        " that vary are always added unless --pool",
    ),
    metric: list[str] | None = typer.Option(
        None,
        "--metric",
        "-M",
        help="metric names, comma-separated, or 'all' (default: feature_disagreement,"
        " sign_disagreement, euclidean, euclidean_abs)",
    ),
    pool: bool = typer.Option(
        False,
        "--pool",
        help="pool over configurations (model, dataset, superpixels, n_segments, k_frac,"
        " target, method parameters) instead of grouping by those that vary; the title says so",
    ),
    compare: str | None = typer.Option(
        None,
        "--compare",
        help="a key with two values (e.g. correct): difference of means with Welch's 95%"
        " interval, Mann-Whitney U p-value and rank-biserial effect size per group (paired"
        " by sample, Wilcoxon signed-rank, for n_segments, k_frac, superpixels)",
    ),
    adjust: str = AdjustOpt,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """Per group and metric: n, NULLs, mean with its 95% interval, sample std (ddof=1),
    min, p25, median, p75, max, and why the NULLs are NULL.

    Never pools silently: every configuration key (model, dataset, superpixels, n_segments,
    k_frac, target; job when method parameters differ) that takes more than one value in the
    selected jobs is added to the groups, unless --pool. Interval: mean +- t(0.975, n-1) *
    std / sqrt(n) (Student-t). Percentiles interpolate linearly between order statistics
    (numpy's default, PostgreSQL's percentile_cont); NULLs are excluded and counted.
    n counts samples: a group holding several rows of one sample (pooled configurations)
    shows rows apart and its interval is clustered by sample. euclidean and euclidean_abs
    do not depend on k_frac: one row each. --compare p-values are adjusted (--adjust)."""
    from xaiq.analysis.compare import compare_table
    from xaiq.analysis.multiplicity import check_adjust, for_display
    from xaiq.analysis.stats_table import disagreement_table

    out_fmt = output_format(fmt, as_json)
    jobs = selected_jobs(job)
    keys = group_by if group_by is not None else ["pair"]
    method = check_adjust(adjust)
    if compare is not None:
        table = compare_table(_engine(), jobs, keys, compare, metric, pool=pool, adjust=method)
    else:
        table = disagreement_table(_engine(), jobs, keys, metric, pool=pool)
    if not table.rows and out_fmt is OutputFormat.table:
        info("no disagreement rows match")
        return
    if table.grouping.added and out_fmt is not OutputFormat.table:
        info(f"grouped by the configuration keys that vary: {', '.join(table.grouping.added)}")
    rows, columns = table.rows, table.columns
    if compare is not None and human_format(out_fmt):
        rows, columns = for_display(rows, columns, method, table.tests)
    emit(rows, out_fmt, title=table.title, columns=columns)


# a fallback chain runs its strategies one after another: a sample's iterations and forward
# passes are the chain's totals (per strategy: --group-by strategy)
ATTACK_TITLE = "attacks (iterations, forward passes: totals over each sample's strategy chain)"


@stats_app.command("attack")
def stats_attack(
    job: JobsOption = None,
    group_by: list[str] | None = typer.Option(
        None,
        "--group-by",
        "-g",
        help="comma-separated: job, model, dataset, mode, target, label, pred, correct"
        " (default: job); with strategy, grad_decade or confidence_bin: one row per"
        " group of sample x strategy attacks",
    ),
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """Success rate, wins per strategy, median iterations / forward passes (all attacked
    samples), mean L0/L2/L-inf (successful ones), mean target probability before/after.
    Grouped by strategy: each strategy's own success rate with its Wilson interval and
    median iterations to the goal and forward passes.

    `successes` counts only repairs whose final image lies inside the model's input domain;
    `successes_out_of_domain` those that needed pixels outside it (an unclamped search,
    --preset seed) or were never checked; `mean_out_of_domain`/`max_excursion` say how far
    the final images left it, `median_tied_pixels` how many budget pixels ties chose."""
    from xaiq.analysis.queries import ATTACK_COLUMNS, attack_stats, parse_names

    out_fmt = output_format(fmt, as_json)
    jobs = selected_jobs(job)
    keys = group_by if group_by is not None else ["job"]
    if {"strategy", "grad_decade", "confidence_bin"} & set(parse_names(keys)):
        from xaiq.analysis.attack_strategies import STRATEGY_COLUMNS, strategy_stats

        rows = strategy_stats(_engine(), jobs, keys)
        if not rows and out_fmt is OutputFormat.table:
            info("no per-strategy attack results match")
            return
        cols = [*parse_names(keys), *STRATEGY_COLUMNS]
        emit(rows, out_fmt, title="attacks per strategy", columns=cols)
        return
    rows = attack_stats(_engine(), jobs, keys)
    if not rows and out_fmt is OutputFormat.table:
        info("no attack results match")
        return
    emit(rows, out_fmt, title=ATTACK_TITLE, columns=[*parse_names(keys), *ATTACK_COLUMNS])


@app.command("export")
def export_cmd(
    job: int = typer.Argument(..., help="job id", min=1, max=JOB_ID_MAX),
    what: str = typer.Option(
        "disagreements",
        "--what",
        "-w",
        help="disagreements, attacks, attack_strategies (--compare jobs: one row per sample x"
        " strategy), samples, attributions, errors, faithfulness, sanity, or protocol (the"
        " job's protocol card: json the card, csv/parquet field,value rows)",
    ),
    fmt: str = typer.Option("csv", "--format", "-f", help="csv, json (JSON Lines) or parquet"),
    out: str = typer.Option(..., "--out", "-o", help="output file, or - for stdout"),
) -> None:
    """Stream a job's rows to a file (or stdout) in constant memory."""
    import sys

    from xaiq.db.export import export_job

    if out != "-":
        n = export_job(_engine(), job, what, fmt, Path(out))
        noun = "protocol card fields" if what == "protocol" else f"{what} rows"
        info(f"wrote {n} {noun} of job {job} to {out}")
        return
    if fmt == "parquet":
        if sys.stdout.isatty():
            raise CliError("--out -: parquet is binary; redirect stdout to a file or a pipe")
        sys.stdout.flush()
        n = export_job(_engine(), job, what, fmt, sys.stdout.buffer)
    else:
        n = export_job(_engine(), job, what, fmt, sys.stdout)
    info(f"wrote {n} {what} rows of job {job} to stdout")


@app.command("show")
def show_cmd(
    job: int = typer.Argument(..., help="job id", min=1, max=JOB_ID_MAX),
    sample: int = typer.Argument(..., help="sample index"),
    out: Path = typer.Option(
        Path("fig.png"), "--out", "-o", help="figure file: .png, .pdf or .svg"
    ),
    sign: str = typer.Option(
        "all",
        "--sign",
        help="all (signed, diverging colours centred on 0), absolute, positive or negative",
    ),
    preset: str = typer.Option(
        "default", "--preset", help="default, or seed (the source figure: |map|, jet)"
    ),
    boundaries: bool = typer.Option(
        False,
        "--boundaries",
        help="draw the job's most informative superpixel configuration (the largest top-k)"
        " and outline each map's top-k",
    ),
    dpi: int = typer.Option(150, "--dpi", help="figure resolution (10..1200)"),
) -> None:
    """The sample's figure: original | one map per method (the convention of `compare`), or
    for attacks original | changed pixels | final | difference."""
    from xaiq.report import show_sample
    from xaiq.xai.figures import FORMATS, style_for

    if out.suffix.lower().lstrip(".") not in FORMATS:
        raise CliError(f"--out {out}: the figure format is its extension: .png, .pdf or .svg")
    if not 10 <= dpi <= 1200:
        raise CliError(f"--dpi {dpi} is out of range (10..1200)")
    try:
        style = style_for(preset, sign=None if preset == "seed" and sign == "all" else sign)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    from xaiq.db.jobs import check_jobs

    engine = _engine()
    check_jobs(engine, [job])  # an unknown job is its one-line error, before any status line
    info(f"reading job {job} sample {sample} (maps, the original image)...")
    path = show_sample(engine, job, sample, out, style=style, dpi=dpi, boundaries=boundaries)
    info(f"wrote {path}")


@app.command("report")
def report_cmd(
    job: list[int] = typer.Argument(
        ...,
        help="job id; two ids: their comparison (every metric, pair and configuration) first",
        min=1,
        max=JOB_ID_MAX,
    ),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write"),
    metric: str = typer.Option(
        "feature_disagreement",
        "--metric",
        "-M",
        help="headline metric: ranks the examples, drives the correctness and per-class views",
    ),
    rank_at: str = typer.Option(
        "",
        "--rank-at",
        metavar="KEY=VALUE,...",
        help="configuration the examples and the verdict's disagreement are read at, e.g."
        " n_segments=49,k_frac=0.25 (default: the largest k with n_segments at its default)",
    ),
) -> None:
    """A self-contained HTML report (plots embedded) that opens with a verdict per model
    (faithfulness, sanity, disagreement: which explanation to trust), then the evidence:
    summary with 95% intervals, glossary, statistics per pair and configuration,
    distributions, correctness and confidence, per class, ranked examples, the spec. Two
    disagreement jobs open with their comparison: every metric, pair and configuration both
    have, paired by sample where they share images, p-values Holm-adjusted together."""
    from xaiq.db.jobs import check_jobs
    from xaiq.report import build_report
    from xaiq.report.format import set_progress

    engine = _engine()
    check_jobs(engine, job)  # an unknown job is its one-line error, before any status line
    info(f"reading job{'s' if len(job) > 1 else ''} {', '.join(map(str, job))}...")
    set_progress(info)
    try:
        path = build_report(engine, job, out, metric=metric, rank_at=rank_at or None)
    finally:
        set_progress(None)
    info(f"wrote {path}")


def print_demo_summary(
    engine: Any, job_ids: list[int], report_path: str | Path | None = None
) -> None:
    """Print the disagreement tables (per pair and configuration) and the attack table of
    ``job_ids``, then the report's path: the end of ``make demo``. Jobs without such rows
    print nothing.

    Every table goes through :func:`xaiq.cli.output.emit`'s layout (one rounding rule per
    column, cells wrapped only between numbers, a vertical layout when even that does not
    fit), so no number is split across lines at any width. The top-k metrics are one table
    per pair, ``n_segments`` and ``k_frac``; the distances, which do not depend on
    ``k_frac``, a second one per pair and ``n_segments`` (not a ``k_frac`` NULL row each)."""
    from xaiq.analysis.queries import (
        DEFAULT_METRICS,
        attack_stats,
        disagreement_stats,
        varying_config_keys,
    )
    from xaiq.analysis.units import K_FRAC_FREE
    from xaiq.cli.output import pivot_stats

    # one row per pair (and configuration), one "mean [low, high]" cell per metric, so the
    # table fits a terminal; `xaiq stats disagreement` has every statistic
    keys = ["job", "pair", *varying_config_keys(engine, job_ids)]
    stats = disagreement_stats(engine, job_ids, keys, DEFAULT_METRICS)
    jobs = sorted({r["job"] for r in stats})
    shown = keys if len(jobs) > 1 else keys[1:]  # one job: its id goes into the title
    of_job = f" (job {jobs[0]})" if len(jobs) == 1 else ""
    for title, metrics, cols in (
        (
            "top-k disagreement per pair",
            [m for m in DEFAULT_METRICS if m not in K_FRAC_FREE],
            shown,
        ),
        ("distances per pair", [m for m in DEFAULT_METRICS if m in K_FRAC_FREE], shown),
    ):
        rows = [r for r in stats if r["metric"] in metrics]
        if metrics and metrics[0] in K_FRAC_FREE:
            cols = [k for k in cols if k != "k_frac"]  # every row: k_frac NULL
        pivoted = pivot_stats(rows, [*cols, "metric", "n", "mean", "ci_low", "ci_high"])
        if pivoted is None:
            continue
        p_rows, p_cols = pivoted
        emit(
            p_rows,
            OutputFormat.table,
            title=f"{title}{of_job}: mean [95% interval]",
            columns=p_cols,
        )
    from xaiq.analysis.intervals import wilson_interval

    attacks = attack_stats(engine, job_ids, ["job"])
    for a in attacks:
        lo_hi = wilson_interval(a["successes"], a["n"])
        a["success 95% CI"] = "" if lo_hi is None else f"[{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]"
        median = a.get("median_iterations")
        if isinstance(median, float) and median.is_integer():
            a["median_iterations"] = int(median)  # a count, not a measurement
    if attacks:
        cols = [
            "job",
            "n",
            "successes",
            "success_rate",
            "success 95% CI",
            "successes_out_of_domain",
            "won_by",
            "median_iterations",
            "prob_before_mean",
            "prob_after_mean",
        ]
        # a narrow terminal leaves out the last of these first (the note names them)
        optional = [
            "successes_out_of_domain",
            "median_iterations",
            "prob_before_mean",
            "prob_after_mean",
        ]
        emit(attacks, OutputFormat.table, title=ATTACK_TITLE, columns=cols, optional=optional)
    if report_path is not None:
        _path_line(report_path)


def _path_line(path: str | Path) -> None:
    # on stdout and never wrapped, so the path can be copied or grepped whole
    from rich.text import Text

    console.print(Text(f"report: {Path(path).resolve()}"), soft_wrap=True, highlight=False)


def finish_demo(engine: Any, job_ids: list[int], out_dir: str | Path) -> list[Path]:
    """The end of ``make demo``: one HTML report per job in ``out_dir``
    (``report-job<id>.html``), then the tables of :func:`print_demo_summary` and the paths."""
    from xaiq.report import build_report

    paths = [build_report(engine, j, Path(out_dir) / f"report-job{j}.html") for j in job_ids]
    print_demo_summary(engine, job_ids)
    for path in paths:
        _path_line(path)
    return paths


__all__ = ["finish_demo", "print_demo_summary", "stats_app"]
