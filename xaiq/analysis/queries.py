"""Read queries: disagreement and attack statistics with group-by from a fixed allowlist.

Group-by keys and metrics are looked up in fixed dicts that map a user's word to a column
expression; nothing a user types ever becomes SQL text. The statistics and their exact
definitions (sample std, linear-interpolation percentiles) are those of
:mod:`xaiq.analysis.summary`.

Two execution paths give the same numbers (tested against numpy on both backends):

- PostgreSQL: one grouped query, aggregated on the server (``stddev_samp``,
  ``percentile_cont`` = linear interpolation); constant client memory.
- SQLite (no percentile function; its sorter is the bottleneck): one unsorted streaming
  query, the values grouped and summarised in numpy on the client (O(values) memory,
  8 bytes per value; one scan, no SQL sort).

Before either, finished jobs are answered from their stored digests when every group is
one cell (a method pair under one configuration of one job): the statistics the exact path
computed once, at the job's end (:mod:`xaiq.analysis.digest`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, select
from sqlalchemy.sql.elements import ColumnElement

from xaiq.analysis.digest import digest_groups
from xaiq.analysis.exact import default_strategy, stats_client, stats_clustered, stats_sql
from xaiq.analysis.glossary import clip_to_range
from xaiq.analysis.intervals import mean_interval
from xaiq.analysis.summary import STAT_COLUMNS, summarize
from xaiq.analysis.units import JobUnits, MetricSet, dataset_codes, job_units, metric_sets
from xaiq.db.errors import QueryError
from xaiq.db.jobs import check_jobs
from xaiq.db.models import METRIC_COLUMNS, AttackResult, Disagreement, Job, SampleRow

DEFAULT_METRICS = ("feature_disagreement", "sign_disagreement", "euclidean", "euclidean_abs")
# the columns of a disagreement statistic: STAT_COLUMNS with ``rows`` (values used; ``n`` is
# the distinct samples, the same unless a group repeats a sample: xaiq.analysis.units) and
# the mean's 95% Student-t interval (xaiq.analysis.intervals.mean_interval, from n, mean and
# std alone; clustered by sample where samples repeat) after the mean
DISAGREEMENT_COLUMNS = ("n", "rows", "nulls", "mean", "ci_low", "ci_high", *STAT_COLUMNS[3:])


@dataclass(frozen=True)
class GroupKey:
    """A group-by word: the columns it reads, the table it needs, how its value prints."""

    columns: tuple[Callable[[], Any], ...]
    needs: str | None = None  # "samples" or "jobs"
    label: Callable[..., Any] | None = None  # combines several columns into one value


def _pair_label(a: str, b: str) -> str:
    return f"{a} vs {b}"


DISAGREEMENT_KEYS: dict[str, GroupKey] = {
    "pair": GroupKey(
        (lambda: Disagreement.method_a, lambda: Disagreement.method_b), label=_pair_label
    ),
    "method_a": GroupKey((lambda: Disagreement.method_a,)),
    "method_b": GroupKey((lambda: Disagreement.method_b,)),
    "label": GroupKey((lambda: SampleRow.label,), "samples"),
    "pred": GroupKey((lambda: SampleRow.pred,), "samples"),
    "correct": GroupKey((lambda: SampleRow.correct,), "samples"),
    "model": GroupKey((lambda: Job.model,), "jobs"),
    "dataset": GroupKey((lambda: Job.dataset,), "jobs"),
    "job": GroupKey((lambda: Disagreement.job_id,)),
    "superpixels": GroupKey((lambda: Disagreement.superpixels,)),
    "n_segments": GroupKey((lambda: Disagreement.n_segments,)),
    "k_frac": GroupKey((lambda: Disagreement.k_frac,)),
    "target": GroupKey((lambda: Disagreement.target_kind,)),  # which class was explained
}

ATTACK_KEYS: dict[str, GroupKey] = {
    "job": GroupKey((lambda: AttackResult.job_id,)),
    "model": GroupKey((lambda: Job.model,), "jobs"),
    "dataset": GroupKey((lambda: Job.dataset,), "jobs"),
    "mode": GroupKey((lambda: AttackResult.mode,)),
    "target": GroupKey((lambda: AttackResult.target,)),
    "label": GroupKey((lambda: SampleRow.label,), "samples"),
    "pred": GroupKey((lambda: SampleRow.pred,), "samples"),
    "correct": GroupKey((lambda: SampleRow.correct,), "samples"),
}


def parse_names(values: str | Iterable[str] | None) -> list[str]:
    """``"a,b"`` or ``["a", "b,c"]`` -> ``["a", "b", "c"]`` (blanks dropped, order kept)."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    return [p.strip() for item in items for p in item.split(",") if p.strip()]


def check_group_by(keys: str | Iterable[str] | None, allowed: dict[str, GroupKey]) -> list[str]:
    names = parse_names(keys)
    for name in names:
        if name not in allowed:
            raise QueryError(f"unknown group-by key {name!r}; known: {', '.join(allowed)}")
    return list(dict.fromkeys(names))


def check_metrics(metrics: str | Iterable[str] | None) -> list[str]:
    """Validated metric names; ``None``/empty -> :data:`DEFAULT_METRICS`, ``all`` -> all ten."""
    names = parse_names(metrics)
    if not names:
        return list(DEFAULT_METRICS)
    if names == ["all"]:
        return list(METRIC_COLUMNS)
    for name in names:
        if name not in METRIC_COLUMNS:
            raise QueryError(f"unknown metric {name!r}; known: all, {', '.join(METRIC_COLUMNS)}")
    return list(dict.fromkeys(names))


def varying_config_keys(engine: Engine, job_ids: Iterable[int] | None = None) -> list[str]:
    """Which of ``superpixels``, ``n_segments``, ``k_frac`` take more than one value in these
    jobs' disagreement rows: the keys a per-pair table must add so that it does not mix
    superpixel configurations."""
    jobs = list(job_ids or [])
    out = []
    with engine.connect() as conn:
        for name in ("superpixels", "n_segments", "k_frac"):
            col = getattr(Disagreement, name)
            stmt = select(col).distinct().limit(2)
            if jobs:
                stmt = stmt.where(Disagreement.job_id.in_(jobs))
            if len(conn.execute(stmt).all()) > 1:
                out.append(name)
    return out


def grouped_select(
    table: Any, keys: list[str], allowed: dict[str, GroupKey], job_ids: list[int]
) -> tuple[list[ColumnElement[Any]], Select[Any]]:
    cols = [c() for k in keys for c in allowed[k].columns]
    stmt = select().select_from(table)
    needs = {allowed[k].needs for k in keys}
    if "samples" in needs:
        stmt = stmt.outerjoin(
            SampleRow,
            (SampleRow.job_id == table.job_id) & (SampleRow.sample_index == table.sample_index),
        )
    if "jobs" in needs:
        stmt = stmt.join(Job, Job.id == table.job_id)
    if job_ids:
        stmt = stmt.where(table.job_id.in_(job_ids))
    return cols, stmt


def group_key_values(raw: tuple, keys: list[str], allowed: dict[str, GroupKey]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i = 0
    for k in keys:
        spec = allowed[k]
        part = raw[i : i + len(spec.columns)]
        i += len(spec.columns)
        value = spec.label(*part) if spec.label else part[0]
        out[k] = bool(value) if k == "correct" and value is not None else value
    return out


def group_sort_key(raw: tuple) -> tuple:
    return tuple((v is None, v if v is not None else 0) for v in raw)


def disagreement_stats(
    engine: Engine,
    job_ids: Iterable[int] | None = None,
    group_by: str | Iterable[str] | None = ("pair",),
    metrics: str | Iterable[str] | None = None,
    *,
    strategy: str | None = None,
) -> list[dict[str, Any]]:
    """One row per (group, metric): the group's keys, ``metric`` and
    :data:`DISAGREEMENT_COLUMNS` (:data:`STAT_COLUMNS` plus ``rows`` and ``ci_low``/
    ``ci_high``, the mean's 95% Student-t interval, clipped to the metric's range; NULL when
    n < 2).

    This groups by exactly the keys given: the pooling rule (configuration keys added
    unless pooling) is :func:`xaiq.analysis.grouping.resolve_grouping`'s, applied by callers.
    The unit rules of :mod:`xaiq.analysis.units` always hold: ``euclidean`` and
    ``euclidean_abs`` are read once per sample and configuration whatever the ``k_frac``
    values (their rows show ``k_frac`` as NULL when it is a key), and a group that can
    hold several rows of one sample reports ``n`` = distinct samples, ``rows`` = values
    used, and an interval clustered by sample. Elsewhere ``rows`` = ``n``.

    ``job_ids``: restrict to these jobs (each must exist), default all. ``group_by``: words
    of :data:`DISAGREEMENT_KEYS` (``pair`` prints as ``"a vs b"``); empty = one overall
    group. ``metrics``: names of ``METRIC_COLUMNS`` or ``all`` (default
    :data:`DEFAULT_METRICS`). ``strategy``: ``"digest"`` (the stored per-cell statistics of
    finished jobs, :mod:`xaiq.analysis.digest`), ``"sql"`` (server-side, PostgreSQL only) or
    ``"client"``; default: the digest when it can answer, else per backend as in the module
    docstring. Clustered groups always take the client path.
    """
    keys = check_group_by(group_by, DISAGREEMENT_KEYS)
    names = check_metrics(metrics)
    jobs = check_jobs(engine, job_ids)
    units = job_units(engine, jobs)
    order = {m: i for i, m in enumerate(names)}
    rows: list[dict[str, Any]] = []
    for mset in metric_sets(engine, units, keys, names):
        groups = _set_groups(engine, jobs, units, mset, strategy)
        for raw, stats in groups:
            key_values = group_key_values(raw, mset.keys, DISAGREEMENT_KEYS)
            key_values.update(dict.fromkeys(mset.dropped))
            for name, st in zip(mset.metrics, stats, strict=True):
                if "ci_low" in st:  # clustered: the interval came with the values
                    ci = None if st["ci_low"] is None else (st["ci_low"], st["ci_high"])
                else:
                    ci = mean_interval(st["n"], st["mean"], st["std"])
                low, high = clip_to_range(name, *ci) if ci is not None else (None, None)
                rows.append(
                    {
                        **{k: key_values[k] for k in keys},
                        "metric": name,
                        **st,
                        "rows": st.get("rows", st["n"]),
                        "ci_low": low,
                        "ci_high": high,
                    }
                )
    rows.sort(key=lambda r: (group_sort_key(tuple(r[k] for k in keys)), order[r["metric"]]))
    return rows


def _set_groups(
    engine: Engine,
    jobs: list[int],
    units: dict[int, JobUnits],
    mset: MetricSet,
    strategy: str | None,
) -> list[tuple[tuple, list[dict[str, Any]]]]:
    cols, base = grouped_select(Disagreement, mset.keys, DISAGREEMENT_KEYS, jobs)
    if mset.where is not None:
        base = base.where(mset.where)
    values = [getattr(Disagreement, m) for m in mset.metrics]
    if mset.clustered:
        if strategy == "digest":
            raise QueryError("no digest can answer groups that repeat a sample (clustered)")
        return stats_clustered(engine, cols, base, values, dataset_codes(units))
    groups = None
    if strategy in (None, "digest"):
        groups = digest_groups(engine, cols, jobs, mset.metrics, dedupe_k_frac=mset.dedupe_k_frac)
        if groups is None and strategy == "digest":
            raise QueryError("no digest can answer this query (see xaiq.analysis.digest)")
    if groups is None:
        strategy = strategy or default_strategy(engine)
        if strategy == "sql":
            groups = stats_sql(engine, cols, base, values)
        elif strategy == "client":
            groups = stats_client(engine, cols, base, values)
        else:
            raise QueryError(f"unknown stats strategy {strategy!r}; known: digest, sql, client")
    return groups


def in_domain_success(success: Any, out_of_domain: Any) -> bool:
    """A plain success: the goal was reached with a final image inside the model's input
    domain. A success with out-of-domain pixels, or whose domain was never checked (NULL:
    rows before migration 0008), is not one."""
    return bool(success) and out_of_domain is not None and out_of_domain == 0


def success_label(success: Any, out_of_domain: Any) -> str:
    """``success``, ``success (out of domain)``, ``success (domain not checked)`` or
    ``failed``: how every table and picture names an attack's outcome."""
    if not success:
        return "failed"
    if out_of_domain is None:
        return "success (domain not checked)"
    return "success" if out_of_domain == 0 else "success (out of domain)"


ATTACK_COLUMNS = (
    "n",
    "successes",
    "success_rate",
    "successes_out_of_domain",
    "won_by",
    "median_iterations",
    "median_forward_passes",
    "success_l0_mean",
    "success_l2_mean",
    "success_linf_mean",
    "prob_before_mean",
    "prob_after_mean",
    "mean_out_of_domain",
    "max_excursion",
    "median_tied_pixels",
)


def attack_stats(
    engine: Engine,
    job_ids: Iterable[int] | None = None,
    group_by: str | Iterable[str] | None = ("job",),
) -> list[dict[str, Any]]:
    """One row per group of attack results with :data:`ATTACK_COLUMNS`.

    ``successes``/``success_rate``: successes whose final image is inside the model's input
    domain; ``successes_out_of_domain``: the others (out-of-domain pixels, or not checked).
    ``won_by``: ``"central: 9, rise-least: 1"`` — successes per winning strategy (a success
    with no strategy, i.e. already predicted as the target, counts as ``none``; one with
    out-of-domain pixels as ``central (out of domain)``). ``mean_out_of_domain``: mean share
    of the final images' pixels outside the domain; ``max_excursion``: the largest distance
    beyond it; ``median_tied_pixels``: pixels of the deciding strategy chosen among ties.
    Medians of iterations and forward passes are over all attacked samples (the cost);
    L0/L2/L∞ means over the successful ones (the size of the change that worked), NULL when
    there is none; probability means over all. Medians as in :mod:`xaiq.analysis.summary`.
    """
    keys = check_group_by(group_by, ATTACK_KEYS)
    jobs = check_jobs(engine, job_ids)
    cols, base = grouped_select(AttackResult, keys, ATTACK_KEYS, jobs)
    a = AttackResult
    stmt = base.add_columns(
        *cols,
        a.success,
        a.strategy,
        a.iterations,
        a.forward_passes,
        a.l0,
        a.l2,
        a.linf,
        a.prob_before,
        a.prob_after,
        a.out_of_domain,
        a.max_excursion,
        a.tied_pixels,
    )
    nk = len(cols)
    groups: dict[tuple, list[tuple]] = {}
    with engine.connect() as conn:
        for row in conn.execution_options(stream_results=True).execute(stmt):
            groups.setdefault(tuple(row[:nk]), []).append(tuple(row[nk:]))
    out = []
    for raw in sorted(groups, key=group_sort_key):
        rows = groups[raw]
        ok = [r for r in rows if r[0]]
        plain = [r for r in ok if in_domain_success(r[0], r[9])]
        won: dict[str, int] = {}
        for r in ok:
            name = r[1] or "none"
            if not in_domain_success(r[0], r[9]):
                name += " (" + success_label(r[0], r[9]).partition("(")[2]
            won[name] = won.get(name, 0) + 1
        out.append(
            {
                **group_key_values(raw, keys, ATTACK_KEYS),
                "n": len(rows),
                "successes": len(plain),
                "success_rate": len(plain) / len(rows),
                "successes_out_of_domain": len(ok) - len(plain),
                "won_by": ", ".join(f"{k}: {v}" for k, v in sorted(won.items())) or "-",
                "median_iterations": summarize([r[2] for r in rows])["median"],
                "median_forward_passes": summarize([r[3] for r in rows])["median"],
                "success_l0_mean": summarize([r[4] for r in ok])["mean"],
                "success_l2_mean": summarize([r[5] for r in ok])["mean"],
                "success_linf_mean": summarize([r[6] for r in ok])["mean"],
                "prob_before_mean": summarize([r[7] for r in rows])["mean"],
                "prob_after_mean": summarize([r[8] for r in rows])["mean"],
                "mean_out_of_domain": summarize([r[9] for r in rows if r[9] is not None])["mean"],
                "max_excursion": max((r[10] for r in rows if r[10] is not None), default=None),
                "median_tied_pixels": summarize([r[11] for r in rows if r[11] is not None])[
                    "median"
                ],
            }
        )
    return out
