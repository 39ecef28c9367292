"""Two jobs compared cell by cell: ``xaiq report A B``'s comparison section.

A *cell* is everything that fixes what a value measures apart from the job: for a
disagreement metric the method pair and the configuration (``superpixels``, ``n_segments``,
``k_frac``, explained class), for a faithfulness AUC the method and the game (unit,
``n_segments``, order, substrate, ties, kernel, explained class). Only the cells present in
both jobs are compared; every one of them gets a row per metric (no metric, pair or
configuration is left out).

Per row: each job's ``n``, mean and 95% Student-t interval (clipped to the metric's range),
then ``diff`` = mean of job A − mean of job B with a 95% interval (clipped to what a
difference of two values in the metric's range can be) and a two-sided test:

- **paired** when the two jobs explain the same images (same dataset: a sample index names
  one image of a dataset, :mod:`xaiq.analysis.units`): over the ``n_pairs`` samples both
  jobs have in the cell, ``diff`` is the mean of the per-sample differences A − B with its
  Student-t interval, tested by Wilcoxon's signed-rank test;
- **independent** otherwise: Welch's interval of the difference of means and the
  Mann-Whitney U test.

``rank_biserial`` > 0: job A's values tend larger. ``p_adjusted`` adjusts every p-value of
the comparison together (one family: all metrics, pairs, configurations and AUCs; Holm by
default, :mod:`xaiq.analysis.multiplicity`). ``euclidean`` and ``euclidean_abs`` do not
depend on ``k_frac``: they are compared once per configuration (``k_frac`` empty), from
each job's smallest ``k_frac``. Sanity verdicts are set side by side per method and mode
(a verdict is not a test).

A cross-model job stores its maps as ``model:method``; such names align only with a job
that has the same models, so two single-model jobs over different models align by method
and are told apart by their model names (``label_a``, ``label_b``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from xaiq.analysis.compare import COMPARE_COLUMNS, MANN_WHITNEY, SIGNED_RANK
from xaiq.analysis.faithfulness import sanity_stats
from xaiq.analysis.glossary import GLOSSARY, clip_to_range
from xaiq.analysis.intervals import (
    mann_whitney,
    mean_interval_of,
    signed_rank,
    welch_difference,
)
from xaiq.analysis.multiplicity import adjust_rows, check_adjust
from xaiq.analysis.queries import check_metrics
from xaiq.analysis.units import K_FRAC_FREE
from xaiq.db.errors import QueryError
from xaiq.db.models import Disagreement, Faithfulness, Job, JobKind

CONFIG_COLUMNS = ("superpixels", "n_segments", "k_frac", "target")
FAITH_GAME = ("unit", "n_segments", "order", "substrate", "ties", "kernel", "target")
FAITH_MEASURES = ("deletion_auc", "insertion_auc")
SIDE_COLUMNS = ("n", "mean", "low", "high")
# the columns of one test and the tests' names, as the pooled comparison writes them
TEST_COLUMNS = COMPARE_COLUMNS[COMPARE_COLUMNS.index("test") :]
PAIRED_TEST, INDEPENDENT_TEST = SIGNED_RANK, MANN_WHITNEY

# cell key -> sample index -> value
Cells = dict[tuple[Any, ...], dict[int, float]]


@dataclass
class JobComparison:
    """The comparison of job ``a`` with job ``b`` (module doc)."""

    a: int
    b: int
    label_a: str  # "job 1 (digits-cnn)": how the tables name the job
    label_b: str
    paired: bool  # same dataset: tests over the samples both jobs have
    shared_samples: int  # sample indices both jobs stored (paired only; else 0)
    disagreement: list[dict[str, Any]] = field(default_factory=list)
    faithfulness: list[dict[str, Any]] = field(default_factory=list)
    sanity: list[dict[str, Any]] = field(default_factory=list)
    pairs_a: list[str] = field(default_factory=list)  # every method pair job a has
    pairs_b: list[str] = field(default_factory=list)
    only_a: int = 0  # cells (x metric) present in job a only: not compared
    only_b: int = 0
    tests: int = 0
    adjust: str = "holm"


def _job_label(job: Job, other: Job) -> str:
    models = (job.spec or {}).get("models")
    model = ", ".join(models) if isinstance(models, list) and len(models) > 1 else job.model
    extra = [model] if model != other.model or job.dataset == other.dataset else []
    if job.dataset != other.dataset:
        extra.append(f"on {job.dataset}")
    return f"job {job.id}" + (f" ({' '.join(extra)})" if extra else "")


def _disagreement_cells(engine: Engine, job_id: int, metrics: Sequence[str]) -> dict[str, Cells]:
    """metric -> cell (pair, superpixels, n_segments, k_frac, target) -> sample -> value;
    the ``k_frac``-free distances keyed with ``k_frac`` None, from the smallest k_frac."""
    d = Disagreement
    cols = [getattr(d, m) for m in metrics]
    stmt = select(
        d.sample_index,
        d.method_a,
        d.method_b,
        d.superpixels,
        d.n_segments,
        d.k_frac,
        d.target_kind,
        *cols,
    ).where(d.job_id == job_id)
    out: dict[str, Cells] = {m: {} for m in metrics}
    seen_k: dict[tuple[Any, ...], float] = {}  # (metric, cell, sample) -> k_frac read
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=50_000).execute(stmt):
            idx, ma, mb, sp, nseg, kf, target = row[:7]
            pair = f"{ma} vs {mb}"
            for m, v in zip(metrics, row[7:], strict=True):
                if m in K_FRAC_FREE:
                    cell = (pair, sp, nseg, None, target)
                    k = seen_k.get((m, cell, idx))
                    if k is not None and k <= kf:
                        continue
                    seen_k[(m, cell, idx)] = kf
                    out[m].setdefault(cell, {}).pop(int(idx), None)  # a larger k_frac's
                else:
                    cell = (pair, sp, nseg, kf, target)
                bucket = out[m].setdefault(cell, {})
                if v is not None:
                    bucket[int(idx)] = float(v)
    return out


def _faith_cells(engine: Engine, job_id: int, with_model: bool) -> dict[str, Cells]:
    """measure -> cell (method, game...) -> sample -> value (a sample's repeated games of
    one cell averaged)."""
    f = Faithfulness
    game = [f.unit, f.n_segments, f.order, f.substrate, f.ties, f.kernel, f.target_kind]
    stmt = select(f.sample_index, f.model, f.method, *game, f.deletion_auc, f.insertion_auc)
    stmt = stmt.where(f.job_id == job_id)
    sums: dict[str, dict[tuple[Any, ...], dict[int, list[float]]]] = {m: {} for m in FAITH_MEASURES}
    with engine.connect() as conn:
        for row in conn.execute(stmt):
            idx, model, method = row[:3]
            name = f"{model}:{method}" if with_model and model else str(method)
            cell = (name, *row[3:10])
            for m, v in zip(FAITH_MEASURES, row[10:], strict=True):
                bucket = sums[m].setdefault(cell, {})
                if v is not None:
                    acc = bucket.setdefault(int(idx), [0.0, 0.0])
                    acc[0] += float(v)
                    acc[1] += 1.0
    return {
        m: {c: {i: s / k for i, (s, k) in by.items()} for c, by in cells.items()}
        for m, cells in sums.items()
    }


def _faith_models(engine: Engine, job_id: int) -> int:
    """How many models a job's faithfulness rows measured (2 or more: a cross-model job)."""
    f = Faithfulness
    stmt = select(f.model).where(f.job_id == job_id).distinct().limit(2)
    with engine.connect() as conn:
        return len(conn.execute(stmt).all())


def _side(values: dict[int, float], metric: str) -> dict[str, Any]:
    v = np.fromiter(values.values(), dtype=np.float64, count=len(values))
    ci = mean_interval_of(v) if v.size >= 2 else None
    low, high = clip_to_range(metric, *ci) if ci is not None else (None, None)
    return {
        "n": int(v.size),
        "mean": float(v.mean()) if v.size else None,
        "low": low,
        "high": high,
        "sd": float(v.std(ddof=1)) if v.size >= 2 else None,
    }


def _test(a: dict[int, float], b: dict[int, float], paired: bool) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(TEST_COLUMNS)
    out["test"] = PAIRED_TEST if paired else INDEPENDENT_TEST
    if paired:
        shared = sorted(set(a) & set(b))
        out["n_pairs"] = len(shared)
        if not shared:
            return out
        d = np.array([a[i] - b[i] for i in shared], dtype=np.float64)
        out["diff"] = float(d.mean())
        ci = mean_interval_of(d) if d.size >= 2 else None
        if ci is not None:
            out["diff_low"], out["diff_high"] = ci
        sr = signed_rank(d)
        if sr is None:  # every pair equal: no evidence of a shift
            out.update(statistic=0.0, p_value=1.0, rank_biserial=0.0)
        else:
            out.update(statistic=sr.statistic, p_value=sr.p_value, rank_biserial=sr.rank_biserial)
        return out
    sa, sb = _side(a, ""), _side(b, "")
    if sa["mean"] is None or sb["mean"] is None:
        return out
    diff = welch_difference(sa["n"], sa["mean"], sa["sd"], sb["n"], sb["mean"], sb["sd"])
    out.update(diff=diff.diff, diff_low=diff.low, diff_high=diff.high)
    mw = mann_whitney(list(a.values()), list(b.values()))
    if mw is not None:
        out.update(statistic=mw.u, p_value=mw.p_value, rank_biserial=mw.rank_biserial)
    return out


def _rows(
    names: Sequence[str],
    key_names: Sequence[str],
    cells_a: dict[str, Cells],
    cells_b: dict[str, Cells],
    paired: bool,
    measure: str,
) -> tuple[list[dict[str, Any]], int, int]:
    rows = []
    only_a = only_b = 0
    for m in names:
        ca, cb = cells_a.get(m, {}), cells_b.get(m, {})
        only_a += len(set(ca) - set(cb))
        only_b += len(set(cb) - set(ca))
        for cell in sorted(set(ca) & set(cb), key=lambda c: tuple((v is None, str(v)) for v in c)):
            sa, sb = _side(ca[cell], m), _side(cb[cell], m)
            row: dict[str, Any] = dict(zip(key_names, cell, strict=True))
            row[measure] = m
            for side, s in (("a", sa), ("b", sb)):
                for c in SIDE_COLUMNS:
                    row[f"{c}_{side}"] = s[c]
            row.update(_test(ca[cell], cb[cell], paired))
            _clip_difference(row, m)
            rows.append(row)
    return rows, only_a, only_b


def _clip_difference(row: dict[str, Any], metric: str) -> None:
    """A difference of two values in ``[low, high]`` lies in ``[-(high - low), high - low]``:
    its interval is clipped there (the AUCs: ``[0, 1]``)."""
    info = GLOSSARY.get(metric)
    width = (info.high - info.low) if info is not None else 1.0
    if row["diff_low"] is not None:
        row["diff_low"] = max(-width, row["diff_low"])
        row["diff_high"] = min(width, row["diff_high"])


def _shared_samples(engine: Engine, a: int, b: int) -> int:
    from xaiq.db.models import SampleRow

    s = SampleRow
    with engine.connect() as conn:
        ia = set(conn.scalars(select(s.sample_index).where(s.job_id == a)))
        ib = set(conn.scalars(select(s.sample_index).where(s.job_id == b)))
    return len(ia & ib)


def compare_jobs(
    engine: Engine,
    job_a: int,
    job_b: int,
    metrics: str | Iterable[str] | None = "all",
    *,
    adjust: str | None = None,
) -> JobComparison:
    """Job ``job_a`` against job ``job_b`` (module doc): every metric of ``metrics``
    (default all ten) per pair and configuration both jobs have, the faithfulness AUCs per
    method and game when both jobs measured them, the sanity verdicts when both ran the
    check; p-values adjusted together by ``adjust`` (default Holm). Raises
    :class:`QueryError` when a job is not a disagreement job or the two are the same."""
    method = check_adjust(adjust)
    names = check_metrics(metrics)
    if job_a == job_b:
        raise QueryError(f"job {job_a} compared with itself: give two different jobs")
    with Session(engine) as session:
        ja, jb = session.get(Job, job_a), session.get(Job, job_b)
        for jid, job in ((job_a, ja), (job_b, jb)):
            if job is None:
                raise QueryError(f"job {jid} not found")
            if job.kind != JobKind.disagreement:
                raise QueryError(f"job {jid} is a {job.kind.value} job, not a disagreement job")
        assert ja is not None and jb is not None
        session.expunge_all()
    paired = ja.dataset == jb.dataset
    out = JobComparison(
        a=job_a,
        b=job_b,
        label_a=_job_label(ja, jb),
        label_b=_job_label(jb, ja),
        paired=paired,
        shared_samples=_shared_samples(engine, job_a, job_b) if paired else 0,
        adjust=method,
    )
    pair_keys = ("pair", *CONFIG_COLUMNS)
    cells_a = _disagreement_cells(engine, job_a, names)
    cells_b = _disagreement_cells(engine, job_b, names)
    out.pairs_a = sorted({c[0] for by in cells_a.values() for c in by})
    out.pairs_b = sorted({c[0] for by in cells_b.values() for c in by})
    rows, oa, ob = _rows(names, pair_keys, cells_a, cells_b, paired, "metric")
    out.disagreement, out.only_a, out.only_b = rows, oa, ob
    # a cross-model job's AUCs are per model: its methods are named model:method
    with_model = any(_faith_models(engine, j) > 1 for j in (job_a, job_b))
    fa, fb = _faith_cells(engine, job_a, with_model), _faith_cells(engine, job_b, with_model)
    if any(fa.values()) and any(fb.values()):
        frows, oa, ob = _rows(FAITH_MEASURES, ("method", *FAITH_GAME), fa, fb, paired, "measure")
        out.faithfulness = frows
        out.only_a += oa
        out.only_b += ob
    _, verdicts = sanity_stats(engine, [job_a, job_b])
    by_job: dict[int, dict[tuple[str, str], dict[str, Any]]] = {}
    for v in verdicts:
        by_job.setdefault(v["job"], {})[(v["method"], v["mode"])] = v
    va, vb = by_job.get(job_a, {}), by_job.get(job_b, {})
    for key in sorted(set(va) & set(vb)):
        row: dict[str, Any] = {"method": key[0], "mode": key[1]}
        for side, v in (("a", va[key]), ("b", vb[key])):
            row[f"verdict_{side}"] = v["verdict"]
            row[f"spearman_abs_{side}"] = v["spearman_abs_mean"]
            row[f"spearman_abs_high_{side}"] = v["spearman_abs_high"]
            row[f"spearman_signed_{side}"] = v["spearman_signed_mean"]
            row[f"n_{side}"] = v["n"]
        out.sanity.append(row)
    out.tests = adjust_rows([*out.disagreement, *out.faithfulness], method)
    return out


__all__ = [
    "CONFIG_COLUMNS",
    "FAITH_GAME",
    "FAITH_MEASURES",
    "INDEPENDENT_TEST",
    "PAIRED_TEST",
    "JobComparison",
    "compare_jobs",
]
