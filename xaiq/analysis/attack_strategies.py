"""Per-strategy attack statistics: success rate with its Wilson interval, and the cost.

One row per group of ``attack_strategy_results`` (one per sample x strategy attacked): the
success rate with a Wilson score interval (:func:`xaiq.analysis.intervals.wilson_interval`), the
median iteration at which the goal was first reached (successes), the median iterations and
forward passes spent (all attempts: the cost), the medians of the lab's diagnosis at the
original (the goal's gradient norms, the model's confidence). Group-by words come from
:data:`STRATEGY_KEYS`; ``grad_decade`` = ``floor(log10(grad_norm_logprob))`` makes "do
gradient guides fail where gradients vanish?" one query:
``xaiq stats attack -g strategy,grad_decade``. Grouping is done on the client (one row per
sample x strategy: a job has at most a few thousand).

A success is counted in ``successes`` (and the rate and its interval) only when its final
image lies inside the model's input domain (``out_of_domain == 0``); a success that needs
out-of-domain pixels (an unclamped search, ``preset=seed``) or was never checked (rows
before migration 0008) goes to ``successes_out_of_domain`` instead. ``mean_out_of_domain``
and ``max_excursion`` say how far the final images left the domain; ``median_tied_pixels``
how many of a budget's pixels the tie rule chose.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, select

from xaiq.analysis.intervals import wilson_interval
from xaiq.analysis.queries import in_domain_success, parse_names
from xaiq.analysis.summary import summarize
from xaiq.db.errors import QueryError
from xaiq.db.jobs import check_jobs
from xaiq.db.models import AttackResult, AttackStrategyResult, Job, SampleRow

S, A = AttackStrategyResult, AttackResult
_FIELDS = {
    "job": S.job_id,
    "sample_index": S.sample_index,
    "strategy": S.strategy,
    "position": S.position,
    "success": S.success,
    "first_success_iter": S.first_success_iter,
    "iterations": S.iterations,
    "forward_passes": S.forward_passes,
    "mode": A.mode,
    "target": A.target,
    "grad_norm_logit": A.grad_norm_logit,
    "grad_norm_logprob": A.grad_norm_logprob,
    "confidence": A.confidence,
    "out_of_domain": S.out_of_domain,
    "max_excursion": S.max_excursion,
    "tied_pixels": S.tied_pixels,
    "label": SampleRow.label,
    "correct": SampleRow.correct,
    "model": Job.model,
    "dataset": Job.dataset,
}


def _decade(row: dict[str, Any]) -> int | None:
    g = row["grad_norm_logprob"]
    return None if g is None or g <= 0 else math.floor(math.log10(g))


def _confidence_bin(row: dict[str, Any]) -> float | None:
    c = row["confidence"]
    return None if c is None else min(9, int(c * 10)) / 10


def _field(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row[name]


_PLAIN = ("strategy", "job", "model", "dataset", "mode", "target", "label", "correct")
STRATEGY_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    **{k: _field(k) for k in _PLAIN},
    "grad_decade": _decade,
    "confidence_bin": _confidence_bin,
}
STRATEGY_COLUMNS = (
    "n",
    "successes",
    "success_rate",
    "success_low",
    "success_high",
    "successes_out_of_domain",
    "mean_out_of_domain",
    "max_excursion",
    "median_tied_pixels",
    "median_first_success_iter",
    "median_iterations",
    "median_forward_passes",
    "median_grad_norm_logit",
    "median_grad_norm_logprob",
    "median_confidence",
)


def strategy_rows(engine: Engine, job_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Every per-strategy row of ``job_ids`` (all jobs if empty) joined with its sample's
    attack row, sample row and job; ordered by job, sample and strategy position."""
    stmt = (
        select(*[c.label(k) for k, c in _FIELDS.items()])
        .select_from(S)
        .join(A, (A.job_id == S.job_id) & (A.sample_index == S.sample_index))
        .join(Job, Job.id == S.job_id)
        .outerjoin(
            SampleRow, (SampleRow.job_id == S.job_id) & (SampleRow.sample_index == S.sample_index)
        )
        .order_by(S.job_id, S.sample_index, S.position)
    )
    if job_ids:
        stmt = stmt.where(S.job_id.in_(list(job_ids)))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def _median(values: Iterable[Any]) -> float | None:
    return summarize([v for v in values if v is not None])["median"]


def strategy_stats(
    engine: Engine,
    job_ids: Iterable[int] | None = None,
    group_by: str | Iterable[str] | None = ("strategy",),
) -> list[dict[str, Any]]:
    """One row per group with its keys and :data:`STRATEGY_COLUMNS`; groups in the order of
    the strategies' positions, then by the other keys."""
    keys = list(dict.fromkeys(parse_names(group_by))) or ["strategy"]
    for k in keys:
        if k not in STRATEGY_KEYS:
            raise QueryError(f"unknown group-by key {k!r}; known: {', '.join(STRATEGY_KEYS)}")
    jobs = check_jobs(engine, job_ids)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    first_position: dict[tuple, int] = {}
    for row in strategy_rows(engine, jobs):
        key = tuple(STRATEGY_KEYS[k](row) for k in keys)
        groups.setdefault(key, []).append(row)
        first_position.setdefault(key, row["position"])

    def order(key: tuple) -> tuple:
        return (first_position[key], *((v is None, v if v is not None else 0) for v in key))

    out = []
    for key in sorted(groups, key=order):
        rows = groups[key]
        ok = sum(1 for r in rows if in_domain_success(r["success"], r["out_of_domain"]))
        ood_ok = sum(1 for r in rows if r["success"]) - ok
        interval = wilson_interval(ok, len(rows))
        out.append(
            {
                **{
                    k: (bool(v) if k == "correct" and v is not None else v)
                    for k, v in zip(keys, key, strict=True)
                },
                "n": len(rows),
                "successes": ok,
                "success_rate": ok / len(rows),
                "success_low": interval[0] if interval else None,
                "success_high": interval[1] if interval else None,
                "successes_out_of_domain": ood_ok,
                "mean_out_of_domain": summarize(
                    [r["out_of_domain"] for r in rows if r["out_of_domain"] is not None]
                )["mean"],
                "max_excursion": max(
                    (r["max_excursion"] for r in rows if r["max_excursion"] is not None),
                    default=None,
                ),
                "median_tied_pixels": _median(r["tied_pixels"] for r in rows),
                "median_first_success_iter": _median(r["first_success_iter"] for r in rows),
                "median_iterations": _median(r["iterations"] for r in rows),
                "median_forward_passes": _median(r["forward_passes"] for r in rows),
                "median_grad_norm_logit": _median(r["grad_norm_logit"] for r in rows),
                "median_grad_norm_logprob": _median(r["grad_norm_logprob"] for r in rows),
                "median_confidence": _median(r["confidence"] for r in rows),
            }
        )
    return out


def success_curves(
    engine: Engine, job_ids: Sequence[int], max_iters: int | None = None
) -> dict[str, list[tuple[int, float]]]:
    """Per strategy: ``(iteration, share of its attacked samples at the goal by then)``
    steps, from ``first_success_iter`` (a step at every distinct value, starting at 0).
    Only successes inside the input domain count."""
    per: dict[str, list[int | None]] = {}
    for row in strategy_rows(engine, job_ids):
        ok = in_domain_success(row["success"], row["out_of_domain"])
        per.setdefault(row["strategy"], []).append(row["first_success_iter"] if ok else None)
    curves = {}
    for name, firsts in per.items():
        n = len(firsts)
        counts = Counter(f for f in firsts if f is not None)
        steps, done = [(0, 0.0)], 0
        for it in sorted(counts):
            done += counts[it]
            steps.append((it, done / n))
        if max_iters is not None and steps[-1][0] < max_iters:
            steps.append((max_iters, steps[-1][1]))
        curves[name] = steps
    return curves
