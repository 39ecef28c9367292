"""The store reads behind the report and ``xaiq show`` (bound parameters only)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import Engine, Integer, cast, func, select
from sqlalchemy.orm import Session

from xaiq.db.errors import NotFoundError
from xaiq.db.models import (
    AttackResult,
    Attribution,
    Disagreement,
    Job,
    SampleErrorRow,
    SampleRow,
)
from xaiq.report.sources import load_artifact


def get_job(engine: Engine, job_id: int) -> Job:
    """The job row, detached (readable after the session closes)."""
    with Session(engine, expire_on_commit=False) as session:
        job = session.get(Job, int(job_id))
        if job is None:
            raise NotFoundError(f"unknown job id {job_id}")
        session.expunge(job)
    return job


def job_counts(engine: Engine, job_id: int) -> dict[str, Any]:
    """Samples stored, how many the model got right, and per-sample errors."""
    with engine.connect() as conn:
        n, correct = conn.execute(
            select(func.count(SampleRow.id), func.sum(cast(SampleRow.correct, Integer))).where(
                SampleRow.job_id == job_id
            )
        ).one()
        errors = conn.scalar(
            select(func.count(SampleErrorRow.id)).where(SampleErrorRow.job_id == job_id)
        )
    return {"samples": int(n), "correct": int(correct or 0), "sample_errors": int(errors or 0)}


def maps_job_id(job: Job) -> int:
    """The job whose attribution rows hold this job's maps (``from_job`` reuse, else itself)."""
    src = (job.spec or {}).get("from_job")
    return int(src) if src else int(job.id)


def job_methods(job: Job) -> list[str]:
    return [str(m) for m in ((job.spec or {}).get("methods") or [])]


def sample_maps(engine: Engine, job: Job, sample_index: int) -> dict[str, np.ndarray]:
    """Attribution maps ``{method: float32 [H, W]}`` of one sample, in the spec's method order
    (methods whose artifact is missing or fails its checksum are left out)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Attribution.method, Attribution.artifact, Attribution.checksum)
            .where(Attribution.job_id == maps_job_id(job))
            .where(Attribution.sample_index == int(sample_index))
        ).all()
    from xaiq.analysis.verdict import split_name

    models = job_models(job)
    order = {m: i for i, m in enumerate(job_methods(job))}

    def rank(name: str) -> tuple[int, float, str]:  # models in the spec's order, then methods
        model, method = split_name(name, models)
        return (
            models.index(model) if model in models else len(models),
            order.get(method, 1e9),
            name,
        )

    out: dict[str, np.ndarray] = {}
    for method, rel, checksum in sorted(rows, key=lambda r: rank(r[0])):
        arr = load_artifact(rel, checksum)
        if arr is not None and arr.ndim == 2:
            out[method] = arr.astype(np.float32)
    return out


def sample_row(engine: Engine, job_id: int, sample_index: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(SampleRow.__table__)
            .where(SampleRow.job_id == job_id)
            .where(SampleRow.sample_index == int(sample_index))
        ).first()
    return dict(row._mapping) if row is not None else None


def attack_rows(
    engine: Engine, job_id: int, sample_index: int | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    stmt = select(AttackResult.__table__).where(AttackResult.job_id == job_id)
    if sample_index is not None:
        stmt = stmt.where(AttackResult.sample_index == int(sample_index))
    stmt = stmt.order_by(AttackResult.sample_index)
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def sample_indices(engine: Engine, job_id: int, n: int) -> list[int]:
    """The first ``n`` sample indices of a job (by index)."""
    with engine.connect() as conn:
        return [
            int(i)
            for i in conn.scalars(
                select(SampleRow.sample_index)
                .where(SampleRow.job_id == job_id)
                .order_by(SampleRow.sample_index)
                .limit(n)
            )
        ]


def job_values(engine: Engine, job_id: int, metrics: list[str], config_keys: list[str]) -> Any:
    """One job's disagreement rows as :class:`xaiq.report.charts.Values` (``config`` is the
    label of ``config_keys``' values, e.g. ``n_segments 16 · k_frac 0.05``; ``all`` when no
    key varies)."""
    from xaiq.report.charts import Values

    cols = [
        Disagreement.method_a,
        Disagreement.method_b,
        *(_config_column(k) for k in config_keys),
        SampleRow.correct,
        SampleRow.prob_pred,
        *(getattr(Disagreement, m) for m in metrics),
    ]
    stmt = (
        select(*cols)
        .outerjoin(
            SampleRow,
            (SampleRow.job_id == Disagreement.job_id)
            & (SampleRow.sample_index == Disagreement.sample_index),
        )
        .where(Disagreement.job_id == job_id)
        .order_by(Disagreement.sample_index, Disagreement.id)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    nk = len(config_keys)
    pair = np.array([f"{r[0]} vs {r[1]}" for r in rows], dtype=object)
    config = np.array([config_label(config_keys, r[2 : 2 + nk]) for r in rows], dtype=object)
    correct = np.array(
        [np.nan if r[2 + nk] is None else float(bool(r[2 + nk])) for r in rows], dtype=np.float64
    )
    confidence = np.array([r[3 + nk] for r in rows], dtype=np.float64)
    values = {
        m: np.array([r[4 + nk + j] for r in rows], dtype=np.float64) for j, m in enumerate(metrics)
    }
    return Values(pair, config, correct, confidence, values)


def _config_column(key: str) -> Any:
    return Disagreement.target_kind if key == "target" else getattr(Disagreement, key)


def config_label(keys: list[str], values: Any) -> str:
    """``n_segments 16 · k_frac 0.05`` (``all`` for no keys)."""
    if not keys:
        return "all"
    return " · ".join(
        f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in zip(keys, values, strict=True)
    )


def ranked_in_config(
    engine: Engine,
    job_id: int,
    metric: str,
    where: dict[str, Any],
    n: int,
    *,
    descending: bool,
) -> list[tuple[int, float]]:
    """The ``n`` samples with the highest (``descending``) or lowest mean ``metric`` over the
    pairs of one configuration (``where``: key -> value), as ``(sample_index, mean)``; ties
    go to the lower sample index."""
    col = getattr(Disagreement, metric)
    mean = func.avg(col).label("m")
    stmt = (
        select(Disagreement.sample_index, mean)
        .where(Disagreement.job_id == job_id)
        .where(col.is_not(None))
        .group_by(Disagreement.sample_index)
        .order_by(mean.desc() if descending else mean.asc(), Disagreement.sample_index)
        .limit(n)
    )
    for key, value in where.items():
        stmt = stmt.where(_config_column(key) == value)
    with engine.connect() as conn:
        return [(int(i), float(m)) for i, m in conn.execute(stmt)]


def job_models(job: Job) -> list[str]:
    """Every model of the job, in the spec's order (``models`` of a cross-model job)."""
    models = (job.spec or {}).get("models") or [job.model]
    return [str(m) for m in models]


def model_predictions(
    engine: Engine, job: Job, sample_index: int | None = None
) -> dict[str, dict[int, int]]:
    """Per model of a cross-model job, ``{sample_index: prediction}``.

    Only the first model's prediction has a sample row; the others' are the classes their
    maps explained (``target_kind`` ``pred``), so a job explaining the label has none."""
    models = job_models(job)
    out: dict[str, dict[int, int]] = {m: {} for m in models}
    stmt = (
        select(Attribution.model, Attribution.sample_index, Attribution.target)
        .where(Attribution.job_id == maps_job_id(job))
        .where(Attribution.target_kind == "pred")
    )
    own = select(SampleRow.sample_index, SampleRow.pred).where(SampleRow.job_id == job.id)
    if sample_index is not None:
        stmt = stmt.where(Attribution.sample_index == int(sample_index))
        own = own.where(SampleRow.sample_index == int(sample_index))
    with engine.connect() as conn:
        for model, idx, target in conn.execute(stmt):
            if model in out:
                out[model].setdefault(int(idx), int(target))
        for idx, pred in conn.execute(own):
            out[models[0]][int(idx)] = int(pred)
    return out


def sample_labels(engine: Engine, job_id: int) -> dict[int, int | None]:
    with engine.connect() as conn:
        return {
            int(i): (None if lab is None else int(lab))
            for i, lab in conn.execute(
                select(SampleRow.sample_index, SampleRow.label).where(SampleRow.job_id == job_id)
            )
        }
