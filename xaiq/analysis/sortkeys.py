"""Gallery sort keys: every ordering the Samples gallery of ``xaiq serve`` offers, stored once
a job has finished, so that a sorted, filtered page is an index walk of one page.

A *group* (:class:`~xaiq.db.models.SortGroup`) is one family of orderings of a job's samples:

- ``pair``: one method pair at one superpixel configuration (its disagreement rows);
- ``mean``: the mean over the pairs at one configuration, per sample (as the report ranks
  its examples: :func:`xaiq.report.data.ranked_in_config`);
- ``faith``: one method's pixel-unit faithfulness;
- ``attack``: the attack's result;
- ``sample``: the model's view of the sample (probabilities).

Each sample of a group has one :class:`~xaiq.db.models.SortKey` row holding the group's
metrics in the value columns ``v0``..``v9`` (:data:`SLOTS` gives the order per kind) and the
sample's label, prediction and correctness. Every value column has an index
``(group_id, v, sample_index)``, so ``ORDER BY v LIMIT n OFFSET o`` reads ``o + n`` index
entries instead of sorting every row, in SQLite and PostgreSQL alike; ties are broken by the
sample index in the direction of the sort. The number of samples with a value, per label,
prediction and correctness (:class:`~xaiq.db.models.SortCount`), gives a filtered page's
total without counting rows.

Built by whoever finalises a job (:func:`build_sort_keys_quietly`, beside its statistics
digest), a group per transaction with the :class:`~xaiq.db.models.SortKeyIndex` row last: a
reader sees either no keys or all of them. Valid while the index row's ``finished_at`` equals
the job's (a job run again is unfinished meanwhile). Jobs without valid keys (running, or
finished before keys existed) are paged from the result rows directly
(:mod:`xaiq.serve.gallery`), which is slower on large jobs; ``build_sort_keys`` builds them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, func, insert, literal, select

from xaiq.db.models import (
    METRIC_COLUMNS,
    SORT_SLOTS,
    AttackResult,
    Disagreement,
    Faithfulness,
    Job,
    SampleRow,
    SortCount,
    SortGroup,
    SortKey,
    SortKeyIndex,
)

ATTACK_SLOTS = ("l0", "l2", "linf", "prob_after", "iterations", "forward_passes")
FAITH_SLOTS = ("deletion_auc", "insertion_auc")
SAMPLE_SLOTS = ("prob_pred", "prob_target")
# the metric each value column holds, per group kind
SLOTS: dict[str, tuple[str, ...]] = {
    "pair": METRIC_COLUMNS,
    "mean": METRIC_COLUMNS,
    "faith": FAITH_SLOTS,
    "attack": ATTACK_SLOTS,
    "sample": SAMPLE_SLOTS,
}
_V = [f"v{i}" for i in range(SORT_SLOTS)]
_N = [f"n{i}" for i in range(SORT_SLOTS)]
_KEY_COLS = ["group_id", "sample_index", "label", "pred", "correct", *_V]


def slot_of(kind: str, metric: str) -> int | None:
    """The value column (0-9) holding ``metric`` in a group of ``kind``, or None."""
    names = SLOTS.get(kind, ())
    return names.index(metric) if metric in names else None


def valid(conn: Connection, job_id: int) -> bool:
    """Whether the job has sort keys built for its current run."""
    stmt = (
        select(func.count())
        .select_from(SortKeyIndex)
        .join(Job, Job.id == SortKeyIndex.job_id)
        .where(SortKeyIndex.job_id == job_id, SortKeyIndex.finished_at == Job.finished_at)
    )
    return bool(conn.scalar(stmt))


Source = tuple[str, list[dict[str, Any]], Callable[[list[int]], Any]]


def _sources(conn: Connection, job_id: int) -> Iterator[Source]:
    """``(kind, group rows, make)`` per statement that fills groups: ``make(group ids)`` is a
    select of ``gid, si`` and the kind's metric columns. A configuration's pairs share one
    statement (one pass over its rows, each row's pair picks its group)."""
    d = Disagreement
    configs = conn.execute(
        select(d.superpixels, d.n_segments, d.k_frac)
        .where(d.job_id == job_id)
        .distinct()
        .order_by(d.superpixels, d.n_segments, d.k_frac)
    ).all()
    pairs = conn.execute(
        select(d.method_a, d.method_b)
        .where(d.job_id == job_id)
        .distinct()
        .order_by(d.method_a, d.method_b)
    ).all()
    metrics = [getattr(d, m) for m in METRIC_COLUMNS]
    for sp, n_seg, k_frac in configs:
        config = {"superpixels": sp, "n_segments": n_seg, "k_frac": k_frac}
        at = (
            (d.job_id == job_id)
            & (d.superpixels == sp)
            & (d.n_segments == n_seg)
            & (d.k_frac == k_frac)
        )

        def by_pair(ids: list[int], at: Any = at) -> Any:
            which = case(
                *[
                    ((d.method_a == a) & (d.method_b == b), gid)
                    for (a, b), gid in zip(pairs, ids, strict=True)
                ]
            )
            return select(which.label("gid"), d.sample_index.label("si"), *metrics).where(at)

        groups = [{"kind": "pair", "name": f"{a}|{b}", **config} for a, b in pairs]
        yield "pair", groups, by_pair

        def mean(ids: list[int], at: Any = at) -> Any:
            means = [func.avg(m).label(m.key) for m in metrics]
            return (
                select(literal(ids[0]).label("gid"), d.sample_index.label("si"), *means)
                .where(at)
                .group_by(d.sample_index)
            )

        yield "mean", [{"kind": "mean", "name": "", **config}], mean
    f = Faithfulness
    methods = conn.scalars(
        select(f.method).where(f.job_id == job_id).distinct().order_by(f.method)
    ).all()
    for method in methods:

        def faith(ids: list[int], method: str = str(method)) -> Any:
            cols = [func.avg(getattr(f, m)).label(m) for m in FAITH_SLOTS]
            return (
                select(literal(ids[0]).label("gid"), f.sample_index.label("si"), *cols)
                .where(f.job_id == job_id, f.method == method, f.unit == "pixels")
                .group_by(f.sample_index)
            )

        yield "faith", [{"kind": "faith", "name": str(method)}], faith
    a_ = AttackResult
    if conn.scalar(select(a_.id).where(a_.job_id == job_id).limit(1)) is not None:

        def attack(ids: list[int]) -> Any:
            cols = [getattr(a_, m) for m in ATTACK_SLOTS]
            return select(literal(ids[0]).label("gid"), a_.sample_index.label("si"), *cols).where(
                a_.job_id == job_id
            )

        yield "attack", [{"kind": "attack", "name": ""}], attack
    s = SampleRow

    def sample(ids: list[int]) -> Any:
        return select(
            literal(ids[0]).label("gid"), s.sample_index.label("si"), s.prob_pred, s.prob_target
        ).where(s.job_id == job_id)

    yield "sample", [{"kind": "sample", "name": ""}], sample


def _fill(conn: Connection, job_id: int, kind: str, ids: list[int], stmt: Any) -> int:
    """Insert the groups' keys (server-side: ``INSERT ... SELECT``) and their counts."""
    inner = stmt.subquery()
    names = SLOTS[kind]
    s = SampleRow
    values = [inner.c[n] for n in names] + [literal(None)] * (SORT_SLOTS - len(names))
    source = (
        select(inner.c.gid, inner.c.si, s.label, s.pred, s.correct, *values)
        .select_from(inner)
        .outerjoin(s, (s.job_id == job_id) & (s.sample_index == inner.c.si))
    )
    result = conn.execute(insert(SortKey).from_select(_KEY_COLS, source))
    k = SortKey
    for group_id in ids:
        counts = (
            select(
                literal(group_id),
                k.label,
                k.pred,
                k.correct,
                *[func.count(getattr(k, v)) for v in _V],
            )
            .where(k.group_id == group_id)
            .group_by(k.label, k.pred, k.correct)
        )
        conn.execute(
            insert(SortCount).from_select(["group_id", "label", "pred", "correct", *_N], counts)
        )
    return int(result.rowcount or 0)


def build_sort_keys(engine: Engine, job_id: int) -> bool:
    """Build (replacing any older) the sort keys of a finished job; ``False`` when it is not
    finished or was run again meanwhile. One transaction per group, the index row last."""
    with engine.connect() as conn:
        finished = conn.scalar(select(Job.finished_at).where(Job.id == job_id))
    if finished is None:
        return False
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(delete(SortKeyIndex).where(SortKeyIndex.job_id == job_id))
        _drop_groups(conn, job_id)
    n_rows = 0
    with engine.connect() as conn:
        sources = list(_sources(conn, job_id))
        conn.commit()
        with _big_cache(conn):
            for kind, groups, make in sources:
                with conn.begin():
                    ids = [
                        int(
                            conn.execute(
                                insert(SortGroup).returning(SortGroup.id), [g]
                            ).scalar_one()
                        )
                        for g in ({"job_id": job_id, **g} for g in groups)
                    ]
                    n_rows += _fill(conn, job_id, kind, ids, make(ids))
    with engine.begin() as conn:
        current = conn.scalar(select(Job.finished_at).where(Job.id == job_id))
        if current != finished:  # run again while we built: these keys are of the old run
            _drop_groups(conn, job_id)
            return False
        conn.execute(
            insert(SortKeyIndex),
            [
                {
                    "job_id": job_id,
                    "finished_at": finished,
                    "rows": n_rows,
                    "seconds": time.perf_counter() - started,
                }
            ],
        )
    return True


def _drop_groups(conn: Connection, job_id: int) -> None:
    groups = select(SortGroup.id).where(SortGroup.job_id == job_id)
    conn.execute(delete(SortCount).where(SortCount.group_id.in_(groups)))
    conn.execute(delete(SortKey).where(SortKey.group_id.in_(groups)))
    conn.execute(delete(SortGroup).where(SortGroup.job_id == job_id))


@contextlib.contextmanager
def _big_cache(conn: Connection) -> Iterator[None]:
    """SQLite: a larger page cache on ``conn`` while the keys' ten indexes grow (their pages
    are written in random order; the default 2 MB cache would read most of them back)."""
    if conn.dialect.name != "sqlite":
        yield
        return
    conn.exec_driver_sql("PRAGMA cache_size=-262144")  # 256 MiB, this connection only
    conn.commit()
    try:
        yield
    finally:
        conn.exec_driver_sql("PRAGMA cache_size=-2000")
        conn.commit()


def build_sort_keys_quietly(engine: Engine, job_id: int) -> None:
    """After a job was finalised: build its sort keys if it is finished without valid ones.
    Never raises (the gallery falls back to the result rows)."""
    with contextlib.suppress(Exception):
        with engine.connect() as conn:
            row = conn.execute(
                select(Job.finished_at, SortKeyIndex.finished_at)
                .outerjoin(SortKeyIndex, SortKeyIndex.job_id == Job.id)
                .where(Job.id == job_id)
            ).first()
        if row is None:
            return
        finished, built = row
        if finished is not None and built != finished:
            build_sort_keys(engine, job_id)


__all__ = [
    "ATTACK_SLOTS",
    "FAITH_SLOTS",
    "SAMPLE_SLOTS",
    "SLOTS",
    "build_sort_keys",
    "build_sort_keys_quietly",
    "slot_of",
    "valid",
]
