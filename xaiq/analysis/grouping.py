"""The pooling rule: statistics never mix configurations unless the user asks to pool.

A disagreement row belongs to a *configuration*: the model and dataset of its job, the
superpixel method, ``n_segments``, ``k_frac`` and explained class (``target``) of the row,
and the job's method parameters. Averaging across configurations (two superpixel counts
of a sweep, two models) gives a number that describes none of them, so
:func:`resolve_grouping` adds every configuration key that takes more than one value in
the selected jobs to the user's group-by keys. Keys with a single value are reported as
constants (they go into the table's title). With ``pool=True`` nothing is added, the
varying keys are reported as *pooled*, and the title says so.

Method parameters (``rise.n_masks=1000`` in one job, 4000 in another) are not a column:
when they differ between the selected jobs, ``job`` is added as the key that separates
them.

The values come from the jobs' stored specs (one small query on ``jobs``), falling back to
a ``DISTINCT ... LIMIT 2`` over the rows only for a spec that lacks a list, so the rule
costs nothing at ten million rows.

``target`` is the explained class (``pred`` | ``label``; NULL on rows written before the
choice existed). A new configuration key needs its word in :data:`CONFIG_KEYS` (and in
``DISAGREEMENT_KEYS``) and its spec/row source in :data:`_ROW_KEYS`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from xaiq.analysis.queries import DISAGREEMENT_KEYS, check_group_by
from xaiq.db.jobs import check_jobs
from xaiq.db.models import Disagreement, Job, JobKind

CONFIG_KEYS: tuple[str, ...] = (
    "model",
    "dataset",
    "superpixels",
    "n_segments",
    "k_frac",
    "target",
)
# stored per row as well as in the spec: key -> row column (read when a spec lacks the key)
_ROW_KEYS = {
    "superpixels": "superpixels",
    "n_segments": "n_segments",
    "k_frac": "k_frac",
    "target": "target_kind",
}


@dataclass(frozen=True)
class Grouping:
    """The keys a statistics query groups by, and what the table must say about the rest."""

    keys: list[str]  # user keys, then the configuration keys added
    added: list[str] = field(default_factory=list)  # configuration keys added (they vary)
    constant: dict[str, Any] = field(default_factory=dict)  # config key -> its one value
    pooled: dict[str, list[Any]] = field(default_factory=dict)  # varying keys pooled (--pool)

    def title(self, what: str) -> str:
        """``what`` plus the constant configuration and, when pooling, what was pooled."""
        parts = [what]
        shown = {k: v for k, v in self.constant.items() if v is not None}
        if shown:
            parts.append(", ".join(f"{k} {_show(v)}" for k, v in shown.items()))
        if self.pooled:
            pooled = "; ".join(
                f"{k} ({', '.join(_show(v) for v in vals)})" for k, vals in self.pooled.items()
            )
            parts.append(f"POOLED over {pooled}")
        return " — ".join(parts)


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _spec_values(job: Job) -> dict[str, list[Any] | None]:
    """Each configuration key's values from the job's spec (a list, or one scalar); ``None``
    when the spec does not say (then the rows are read)."""
    spec = job.spec or {}
    models = spec.get("models")
    # a cross-model job's configuration is every model it compares, not its first one
    model = ",".join(models) if isinstance(models, list) and len(models) > 1 else job.model
    out: dict[str, list[Any] | None] = {"model": [model], "dataset": [job.dataset]}
    for key in _ROW_KEYS:
        value = spec.get(key)
        if isinstance(value, list):
            out[key] = list(value) or None
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            out[key] = [value]
        else:
            out[key] = None
    if out["target"] is None:
        # a spec without the key predates the choice: its rows store NULL (see models)
        out["target"] = [None]
    return out


def config_values(engine: Engine, job_ids: Iterable[int] | None = None) -> dict[str, list[Any]]:
    """Every value each configuration key takes over the selected disagreement jobs (all
    disagreement jobs when ``job_ids`` is empty), sorted; plus ``params``: one JSON text per
    distinct method-parameter set."""
    jobs = list(job_ids or [])
    stmt = select(Job).where(Job.kind == JobKind.disagreement)
    if jobs:
        stmt = stmt.where(Job.id.in_(jobs))
    values: dict[str, set[Any]] = {k: set() for k in (*CONFIG_KEYS, "params")}
    from_rows: set[str] = set()
    with Session(engine) as session:
        for job in session.scalars(stmt):
            spec_values = _spec_values(job)
            for key in CONFIG_KEYS:
                vals = spec_values.get(key)
                if vals is None:
                    from_rows.add(key)
                else:
                    values[key].update(vals)
            params = (job.spec or {}).get("params") or {}
            values["params"].add(json.dumps(params, sort_keys=True, default=str))
    if from_rows:
        with engine.connect() as conn:
            for key in sorted(from_rows):
                col = getattr(Disagreement, _ROW_KEYS[key])
                stmt2 = select(col).distinct().limit(2)
                if jobs:
                    stmt2 = stmt2.where(Disagreement.job_id.in_(jobs))
                values[key].update(conn.scalars(stmt2))
    return {
        k: sorted(v, key=lambda x: (x is None, x if x is not None else 0))
        for k, v in values.items()
    }


def resolve_grouping(
    engine: Engine,
    job_ids: Iterable[int] | None,
    group_by: str | Iterable[str] | None,
    *,
    pool: bool = False,
    exclude: Iterable[str] = (),
) -> Grouping:
    """The group-by keys for a disagreement statistic under the pooling rule (module doc).

    ``group_by``: the user's keys (checked against :data:`DISAGREEMENT_KEYS`); ``exclude``:
    keys that must not be added (a ``--compare`` key is split on, not grouped by)."""
    keys = check_group_by(group_by, DISAGREEMENT_KEYS)
    jobs = check_jobs(engine, job_ids)
    values = config_values(engine, jobs)
    skip = set(keys) | set(exclude)
    added: list[str] = []
    constant: dict[str, Any] = {}
    pooled: dict[str, list[Any]] = {}
    for key in CONFIG_KEYS:
        vals = values[key]
        if key in skip:
            continue
        if len(vals) == 1:
            constant[key] = vals[0]
        elif len(vals) > 1 and pool:
            pooled[key] = vals
        elif len(vals) > 1:
            added.append(key)
    if len(values["params"]) > 1 and "job" not in skip:
        if pool:
            pooled["method params"] = [f"{len(values['params'])} different sets"]
        else:
            added.append("job")
    return Grouping(keys=[*keys, *added], added=added, constant=constant, pooled=pooled)


__all__ = ["CONFIG_KEYS", "Grouping", "config_values", "resolve_grouping"]
