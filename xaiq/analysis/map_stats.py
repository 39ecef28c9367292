"""``xaiq stats maps``: sparseness (Gini of |map|) and complexity (entropy of the normalised
|map|) per method, from the pixel-unit faithfulness rows (one per sample and map), with how
each relates to the map's faithfulness score across samples, so that "the faithful map is
just the blurrier one" can be checked."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import stats
from sqlalchemy import Engine, select

from xaiq.analysis.faithfulness import mean_cells
from xaiq.db.jobs import check_jobs
from xaiq.db.models import Faithfulness

MAP_KEYS = {"method": Faithfulness.method, "model": Faithfulness.model, "job": Faithfulness.job_id}


def _rho(a: np.ndarray, b: np.ndarray) -> float | None:
    ok = ~(np.isnan(a) | np.isnan(b))
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return None
    return float(stats.spearmanr(a[ok], b[ok]).statistic)


def map_property_stats(
    engine: Engine, job_ids: Iterable[int] | None = None
) -> list[dict[str, Any]]:
    """Per job, model and method: ``n`` (maps with a defined sparseness: an all-zero map has
    none, counted in ``nulls``), sparseness and complexity mean with 95% interval and median,
    and the Spearman correlations across samples of each with the score (insertion -
    deletion AUC over pixels)."""
    jobs = check_jobs(engine, job_ids)
    stmt = select(
        Faithfulness.job_id,
        Faithfulness.model,
        Faithfulness.method,
        Faithfulness.sparseness,
        Faithfulness.complexity,
        Faithfulness.deletion_auc,
        Faithfulness.insertion_auc,
    ).where(Faithfulness.unit == "pixels")
    if jobs:
        stmt = stmt.where(Faithfulness.job_id.in_(jobs))
    groups: dict[tuple, list[tuple]] = {}
    with engine.connect() as conn:
        for j, model, method, *values in conn.execute(stmt):
            groups.setdefault((j, model, method), []).append(tuple(values))
    out = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        arr = np.array(
            [[np.nan if v is None else float(v) for v in row] for row in groups[key]],
            dtype=np.float64,
        ).reshape(-1, 4)
        sparse, comp, score = arr[:, 0], arr[:, 1], arr[:, 3] - arr[:, 2]
        n = int(np.count_nonzero(~np.isnan(sparse)))
        out.append(
            {
                "job": key[0],
                "model": key[1],
                "method": key[2],
                "n": n,
                "nulls": len(sparse) - n,
                **mean_cells("sparseness", sparse, (0.0, 1.0)),
                **mean_cells("complexity", comp, (0.0, float("inf"))),
                "rho_sparseness_score": _rho(sparse, score),
                "rho_complexity_score": _rho(comp, score),
            }
        )
    return out
