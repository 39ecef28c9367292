"""Result rows with their sample's fields joined in: the one join every analysis starts with.

Each result table (disagreements, attributions, attacks, faithfulness, ...) is keyed by
``(job_id, sample_index)``; :data:`SAMPLE_FIELDS` are the sample's columns added to it
(LEFT JOIN, so a result row without a sample row keeps NULLs):

- ``key``: the sample's source key (file name, ``digits/5``);
- ``label``: the true label (NULL without labels); ``pred``: the model's prediction;
- ``correct``: pred == label (NULL without a label);
- ``confidence``: the model's softmax probability of its prediction.

Used by ``xaiq export``, :mod:`xaiq.results` and the report (bound parameters only).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, and_, select
from sqlalchemy.sql.schema import Table

from xaiq.db.models import SampleRow

SAMPLE_FIELDS: dict[str, Any] = {
    "key": SampleRow.key,
    "label": SampleRow.label,
    "pred": SampleRow.pred,
    "correct": SampleRow.correct,
    "confidence": SampleRow.prob_pred,
}


def joined_columns(table: Table) -> list[Any]:
    """The table's columns (without the surrogate ``id``) then the sample fields not already
    in the table, each labelled with its exported name."""
    own = [c for c in table.columns if c.name != "id"]
    names = {c.name for c in own}
    extra = [col.label(name) for name, col in SAMPLE_FIELDS.items() if name not in names]
    return [*own, *extra]


def joined_select(table: Table, job_ids: Iterable[int] | None = None) -> Select[Any]:
    """``SELECT table.*, sample fields FROM table LEFT JOIN samples`` ordered by job, sample
    index and id; restricted to ``job_ids`` when given."""
    stmt = select(*joined_columns(table)).outerjoin(
        SampleRow,
        and_(SampleRow.job_id == table.c.job_id, SampleRow.sample_index == table.c.sample_index),
    )
    jobs = list(job_ids or [])
    if jobs:
        stmt = stmt.where(table.c.job_id.in_(jobs))
    return stmt.order_by(table.c.job_id, table.c.sample_index, table.c.id)


__all__ = ["SAMPLE_FIELDS", "joined_columns", "joined_select"]
