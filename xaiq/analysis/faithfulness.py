"""Read queries over the faithfulness issue's tables: deletion/insertion per method, the
joined pair view (which of two disagreeing maps is more faithful), the sanity check.

Group-by words are looked up in fixed dicts (nothing a user types becomes SQL). Rows are
streamed once and aggregated in numpy on the client; the unit of a deletion/insertion game
(``pixels`` or a superpixel configuration) and, for the sanity check, the mode and layer are
always part of the groups: AUCs of different games are not comparable.

Faithfulness of one map is summarised by ``insertion_auc - deletion_auc`` (``score``: higher
is more faithful; deletion alone: lower is better, insertion alone: higher is better).
Intervals are those of :mod:`xaiq.analysis.intervals` (Student-t means, Wilson rates).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy import stats
from sqlalchemy import Engine, and_, select

from xaiq.analysis.intervals import mean_interval_of, wilson_interval
from xaiq.analysis.multiplicity import adjust_rows, check_adjust
from xaiq.analysis.queries import parse_names
from xaiq.db.errors import QueryError
from xaiq.db.jobs import check_jobs
from xaiq.db.models import METRIC_COLUMNS, Disagreement, Faithfulness, Job, SampleRow, SanityCheck

FAITH_KEYS: dict[str, Any] = {
    "method": Faithfulness.method,
    "model": Faithfulness.model,
    "job": Faithfulness.job_id,
    "target": Faithfulness.target_kind,
    "order": Faithfulness.order,
    "substrate": Faithfulness.substrate,
    "ties": Faithfulness.ties,
    "kernel": Faithfulness.kernel,
    "label": SampleRow.label,
    "pred": SampleRow.pred,
    "correct": SampleRow.correct,
    "dataset": Job.dataset,
}
FAITH_ALWAYS = ("unit", "n_segments")
# configuration keys added to the groups when they vary in the selected rows (never pooled
# silently: AUCs of another order, substrate or explained class measure something else)
FAITH_CONFIG = ("order", "substrate", "ties", "kernel", "target", "dataset")
CRITERIA = ("score", "deletion", "insertion")
SANITY_MEASURES = ("spearman_abs", "spearman_signed", "ssim", "rank_correlation")
SANITY_THRESHOLD = 0.5


def _check_keys(keys: str | Iterable[str] | None, allowed: dict[str, Any]) -> list[str]:
    names = parse_names(keys)
    for name in names:
        if name not in allowed:
            raise QueryError(f"unknown group-by key {name!r}; known: {', '.join(allowed)}")
    return list(dict.fromkeys(names))


def _where(stmt: Any, table: Any, job_ids: list[int]) -> Any:
    return stmt.where(table.job_id.in_(job_ids)) if job_ids else stmt


def _varies(engine: Engine, jobs: list[int], key: str) -> bool:
    col = FAITH_KEYS[key]
    stmt = select(col).distinct().limit(2)
    if key == "dataset":
        stmt = stmt.join(Faithfulness, Faithfulness.job_id == Job.id)
    with engine.connect() as conn:
        return len(conn.execute(_where(stmt, Faithfulness, jobs)).all()) > 1


def mean_cells(
    prefix: str, values: np.ndarray, bounds: tuple[float, float] = (-1.0, 1.0)
) -> dict[str, Any]:
    """Mean, its 95% interval clipped to the measure's range ``bounds``, median."""
    v = values[~np.isnan(values)]
    ci = mean_interval_of(v) if v.size >= 2 else None
    return {
        f"{prefix}_mean": float(v.mean()) if v.size else None,
        f"{prefix}_low": max(bounds[0], ci[0]) if ci else None,
        f"{prefix}_high": min(bounds[1], ci[1]) if ci else None,
        f"{prefix}_median": float(np.median(v)) if v.size else None,
    }


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def faithfulness_stats(
    engine: Engine, job_ids: Iterable[int] | None = None, group_by: Any = ("method",)
) -> list[dict[str, Any]]:
    """Per group (the keys, any of :data:`FAITH_CONFIG` that varies in the selected rows, then
    ``unit`` and ``n_segments``): the cells of :func:`faith_cells` (deletion and insertion
    AUC mean with its 95% interval and median, ``score``, the paired differences against the
    random-order baseline, the LeRF combinations, map properties). Every column is over the
    games with both AUCs (``n``); ``nulls`` counts the games with a NULL AUC."""
    keys = _check_keys(group_by, FAITH_KEYS)
    jobs = check_jobs(engine, job_ids)
    keys += [k for k in FAITH_CONFIG if k not in keys and _varies(engine, jobs, k)]
    cols = [FAITH_KEYS[k].label(k) for k in keys]
    stmt = select(
        *cols,
        Faithfulness.unit,
        Faithfulness.n_segments,
        *[getattr(Faithfulness, v) for v in VALUES],
    )
    if any(k in ("label", "pred", "correct") for k in keys):
        stmt = stmt.join(
            SampleRow,
            and_(
                SampleRow.job_id == Faithfulness.job_id,
                SampleRow.sample_index == Faithfulness.sample_index,
            ),
        )
    if "dataset" in keys:
        stmt = stmt.join(Job, Job.id == Faithfulness.job_id)
    groups: dict[tuple, list[tuple[Any, ...]]] = {}
    width = len(VALUES)
    with engine.connect() as conn:
        for found in conn.execute(_where(stmt, Faithfulness, jobs)):
            values = tuple(found)
            groups.setdefault(values[:-width], []).append(values[-width:])
    out = []
    names = [*keys, *FAITH_ALWAYS]
    for group in sorted(groups, key=lambda g: tuple(str(x) for x in g)):
        cols_of = {v: _floats([r[i] for r in groups[group]]) for i, v in enumerate(VALUES)}
        out.append({**dict(zip(names, group, strict=True)), **faith_cells(cols_of)})
    return out


VALUES = (
    "deletion_auc",
    "insertion_auc",
    "deletion_auc_random",
    "insertion_auc_random",
    "deletion_auc_lerf",
    "insertion_auc_lerf",
    "sparseness",
    "complexity",
)


def faith_cells(v: dict[str, np.ndarray]) -> dict[str, Any]:
    """The cells of one group from its rows' :data:`VALUES` (NaN for NULL): ``n`` (rows
    with both AUCs; every column uses these), ``nulls``; deletion, insertion and ``score``
    (insertion - deletion) with 95% intervals; against chance, the paired differences
    ``deletion_vs_random`` (method - random: below 0 is better than chance) and
    ``insertion_vs_random`` (above 0 is better), each over the rows that have both
    (``n_random``); least relevant first, the combinations ``deletion_gap`` = LeRF - MoRF and
    ``insertion_gap`` = MoRF - LeRF (above 0: the order carries information; ``n_lerf``); the
    maps' mean sparseness and complexity."""
    # one n for every column: the games with both AUCs (a NULL in either leaves the row out
    # of every mean and interval, and counts in ``nulls``)
    complete = ~np.isnan(v["deletion_auc"]) & ~np.isnan(v["insertion_auc"])
    nulls = int(np.count_nonzero(~complete))
    v = {k: a[complete] for k, a in v.items()}
    dele, ins = v["deletion_auc"], v["insertion_auc"]
    d_rand = dele - v["deletion_auc_random"]
    i_rand = ins - v["insertion_auc_random"]
    d_gap = v["deletion_auc_lerf"] - dele
    i_gap = ins - v["insertion_auc_lerf"]
    return {
        "n": int(dele.size),
        "nulls": nulls,
        **mean_cells("deletion", dele, (0.0, 1.0)),
        **mean_cells("insertion", ins, (0.0, 1.0)),
        **mean_cells("score", ins - dele),
        "n_random": int(np.count_nonzero(~np.isnan(d_rand))),
        **mean_cells("deletion_random", v["deletion_auc_random"], (0.0, 1.0)),
        **mean_cells("insertion_random", v["insertion_auc_random"], (0.0, 1.0)),
        **mean_cells("deletion_vs_random", d_rand),
        **mean_cells("insertion_vs_random", i_rand),
        "n_lerf": int(np.count_nonzero(~np.isnan(d_gap))),
        **mean_cells("deletion_lerf", v["deletion_auc_lerf"], (0.0, 1.0)),
        **mean_cells("insertion_lerf", v["insertion_auc_lerf"], (0.0, 1.0)),
        **mean_cells("deletion_gap", d_gap),
        **mean_cells("insertion_gap", i_gap),
        "sparseness_mean": _nanmean(v["sparseness"]),
        "complexity_mean": _nanmean(v["complexity"]),
    }


def _nanmean(values: np.ndarray) -> float | None:
    ok = values[~np.isnan(values)]
    return float(ok.mean()) if ok.size else None


def _faithful(criterion: str, dele: float, ins: float) -> float:
    return {"score": ins - dele, "deletion": -dele, "insertion": ins}[criterion]


def faithfulness_pairs(
    engine: Engine,
    job_ids: Iterable[int] | None = None,
    *,
    metric: str = "feature_disagreement",
    criterion: str = "score",
    unit: str = "pixels",
    adjust: str | None = None,
) -> list[dict[str, Any]]:
    """The joined pair view. Per job, method pair and disagreement configuration: over the
    samples where both maps have a faithfulness row of ``unit`` (``pixels``, or the pair's
    own superpixel method when ``unit="superpixels"``), ``a_more_faithful`` = the share of
    samples where A's map is more faithful than B's by ``criterion`` (``score``: insertion -
    deletion; ``deletion``: lower; ``insertion``: higher; ties count for neither), with its
    Wilson interval, and the Spearman correlation (and p-value) between the pair's
    disagreement ``metric`` and the absolute faithfulness gap ``|f(A) - f(B)|``, whose
    ``p_value`` is adjusted over the rows' tests into ``p_adjusted`` by ``adjust``
    (:mod:`xaiq.analysis.multiplicity`; default Holm)."""
    method = check_adjust(adjust)
    if metric not in METRIC_COLUMNS:
        raise QueryError(f"unknown metric {metric!r}; known: {', '.join(METRIC_COLUMNS)}")
    if criterion not in CRITERIA:
        raise QueryError(f"unknown criterion {criterion!r}; known: {', '.join(CRITERIA)}")
    if unit not in ("pixels", "superpixels"):
        raise QueryError(f"unit must be pixels or superpixels, got {unit!r}")
    jobs = check_jobs(engine, job_ids)
    faith: dict[tuple, float] = {}
    fstmt = select(
        Faithfulness.job_id,
        Faithfulness.sample_index,
        Faithfulness.method,
        Faithfulness.unit,
        Faithfulness.n_segments,
        Faithfulness.deletion_auc,
        Faithfulness.insertion_auc,
    )
    with engine.connect() as conn:
        for j, s, m, u, nseg, dele, ins in conn.execute(_where(fstmt, Faithfulness, jobs)):
            if dele is not None and ins is not None:
                faith[(j, s, m, u, nseg)] = _faithful(criterion, dele, ins)
        dcol = getattr(Disagreement, metric)
        dstmt = select(
            Disagreement.job_id,
            Disagreement.sample_index,
            Disagreement.method_a,
            Disagreement.method_b,
            Disagreement.superpixels,
            Disagreement.n_segments,
            Disagreement.k_frac,
            dcol,
        )
        groups: dict[tuple, list[tuple[float, float, float | None]]] = {}
        for j, s, a, b, sp, nseg, kf, value in conn.execute(_where(dstmt, Disagreement, jobs)):
            fu = ("pixels", 0) if unit == "pixels" else (sp, nseg)
            fa, fb = faith.get((j, s, a, *fu)), faith.get((j, s, b, *fu))
            if fa is None or fb is None:
                continue
            groups.setdefault((j, a, b, sp, nseg, kf), []).append((fa, fb, value))
    out = []
    for (j, a, b, sp, nseg, kf), items in sorted(groups.items(), key=lambda kv: str(kv[0])):
        va, vb = _floats([i[0] for i in items]), _floats([i[1] for i in items])
        wins, losses = int(np.sum(va > vb)), int(np.sum(va < vb))
        n = len(items)
        share = wilson_interval(wins, n)
        d = _floats([i[2] for i in items])
        ok = ~np.isnan(d)
        rho: float | None = None
        p: float | None = None
        gap = np.abs(va - vb)
        if ok.sum() >= 3 and np.ptp(d[ok]) > 0 and np.ptp(gap[ok]) > 0:
            res = stats.spearmanr(d[ok], gap[ok])
            rho, p = float(res.statistic), float(res.pvalue)
        out.append(
            {
                "job": j,
                "method_a": a,
                "method_b": b,
                "superpixels": sp,
                "n_segments": nseg,
                "k_frac": kf,
                "n": n,
                "a_more_faithful": wins / n,
                "a_low": share[0] if share else None,
                "a_high": share[1] if share else None,
                "b_more_faithful": losses / n,
                "mean_gap": float(np.mean(va - vb)),
                f"{metric}_mean": float(d[ok].mean()) if ok.any() else None,
                "n_metric": int(ok.sum()),
                "rho_disagreement_gap": rho,
                "p_value": p,
            }
        )
    adjust_rows(out, method)
    return out


def sanity_stats(
    engine: Engine, job_ids: Iterable[int] | None = None, *, threshold: float = SANITY_THRESHOLD
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(per_layer, verdicts)``. Per job, method, mode and layer (from the logits down):
    ``n`` and the mean (95% interval) of each of :data:`SANITY_MEASURES`. Verdict per job,
    method and mode at the last step (cascading: the fully random network): ``pass`` when the
    upper end of the interval of the mean Spearman correlation of ``|map|`` is below
    ``threshold`` (the map changed when the weights did), ``fail`` otherwise (it survived)."""
    jobs = check_jobs(engine, job_ids)
    cols = [getattr(SanityCheck, m) for m in SANITY_MEASURES]
    stmt = select(
        SanityCheck.job_id,
        SanityCheck.method,
        SanityCheck.mode,
        SanityCheck.layer_order,
        SanityCheck.layer,
        *cols,
    )
    groups: dict[tuple, list[tuple]] = {}
    with engine.connect() as conn:
        for found in conn.execute(_where(stmt, SanityCheck, jobs)):
            groups.setdefault(tuple(found[:5]), []).append(tuple(found[5:]))
    per_layer: list[dict[str, Any]] = []
    for key in sorted(groups, key=lambda k: (k[0], str(k[1]), k[2], k[3])):
        values = groups[key]
        row: dict[str, Any] = dict(
            zip(("job", "method", "mode", "layer_order", "layer"), key, strict=True)
        )
        for i, m in enumerate(SANITY_MEASURES):
            measured = _floats([v[i] for v in values])
            cells = mean_cells(m, measured)
            row.update(
                {
                    f"{m}_n": int(np.count_nonzero(~np.isnan(measured))),
                    f"{m}_mean": cells[f"{m}_mean"],
                    f"{m}_low": cells[f"{m}_low"],
                    f"{m}_high": cells[f"{m}_high"],
                }
            )
        # n: the values the headline mean, its interval and the verdict use; every other
        # measure has its own ``<measure>_n``
        row["n"] = row[f"{SANITY_MEASURES[0]}_n"]
        row["nulls"] = len(values) - row["n"]
        per_layer.append(row)
    verdicts = []
    last: dict[tuple, dict[str, Any]] = {}
    for row in per_layer:
        k = (row["job"], row["method"], row["mode"])
        if k not in last or row["layer_order"] > last[k]["layer_order"]:
            last[k] = row
    for (j, method, mode), row in sorted(last.items(), key=lambda kv: str(kv[0])):
        high = row["spearman_abs_high"]
        verdict = None if high is None else ("pass" if high < threshold else "fail")
        verdicts.append(
            {
                "job": j,
                "method": method,
                "mode": mode,
                "layers": row["layer_order"],
                "last_layer": row["layer"],
                "n": row["n"],
                "nulls": row["nulls"],
                "spearman_abs_mean": row["spearman_abs_mean"],
                "spearman_abs_high": high,
                "spearman_signed_mean": row["spearman_signed_mean"],
                "ssim_mean": row["ssim_mean"],
                "threshold": threshold,
                "verdict": verdict,
            }
        )
    return per_layer, verdicts
