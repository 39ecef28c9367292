"""Gallery sort orders: every ordering the Samples gallery of ``xaiq serve`` offers, stored
once a job has finished, so that a sorted page reads one stored chunk instead of sorting.

A *group* (:class:`~xaiq.db.models.SortGroup`) is one family of orderings of a job's samples:

- ``pair``: one method pair at one superpixel configuration (its disagreement rows);
- ``mean``: the mean over the pairs at one configuration, per sample (as the report ranks
  its examples: :func:`xaiq.report.data.ranked_in_config`);
- ``faith``: one method's pixel-unit faithfulness;
- ``attack``: the attack's result;
- ``sample``: the model's view of the sample (probabilities).

For every metric of a group (its *slot*: :data:`SLOTS` gives the order per kind) the samples
that have a value are sorted ascending by (value, sample index) and stored as little-endian
int32 sample indices in chunks of :data:`CHUNK` (:class:`~xaiq.db.models.SortOrder`). Page
``p`` of ``n`` reads the one or two chunks holding its positions, in either direction (a
descending page walks the ascending order from the end: ties by descending sample index);
its values are then read from the result rows of those ``n`` samples. The job's samples'
labels, predictions and correctness are stored the same way
(:class:`~xaiq.db.models.SortSamples`); a filtered page masks the whole ordering with them
in numpy (a few MB for a 10M-row job) and cuts the page from what is left, its total the
mask's count. Nothing is sorted and no result row is scanned when a page is shown.

Built by whoever finalises a job (:func:`build_sort_keys_quietly`, beside its statistics
digest): the rows are read group by group, sorted in numpy and written a group per
transaction, the :class:`~xaiq.db.models.SortKeyIndex` row that makes them valid last, so a
reader uses either none of them or all. Valid while the index row's ``finished_at`` equals
the job's (a job run again is unfinished meanwhile). Jobs without valid orders (running, or
finished before orders existed) are paged from the result rows directly
(:mod:`xaiq.serve.gallery`), which is slower on large jobs; :func:`build_sort_keys` builds
them for such a job.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, delete, func, insert, select

from xaiq.db.models import (
    METRIC_COLUMNS,
    AttackResult,
    Disagreement,
    Faithfulness,
    Job,
    SampleRow,
    SortGroup,
    SortKeyIndex,
    SortOrder,
    SortSamples,
)

CHUNK = 8192  # sample indices per stored chunk (32 KiB)
NULL_INT = -(2**31)  # a NULL label or prediction in the stored arrays
ATTACK_SLOTS = ("l0", "l2", "linf", "prob_after", "iterations", "forward_passes")
FAITH_SLOTS = ("deletion_auc", "insertion_auc")
SAMPLE_SLOTS = ("prob_pred", "prob_target")
# the metric each slot holds, per group kind
SLOTS: dict[str, tuple[str, ...]] = {
    "pair": METRIC_COLUMNS,
    "mean": METRIC_COLUMNS,
    "faith": FAITH_SLOTS,
    "attack": ATTACK_SLOTS,
    "sample": SAMPLE_SLOTS,
}


def slot_of(kind: str, metric: str) -> int | None:
    """The slot of ``metric`` in a group of ``kind``, or None."""
    names = SLOTS.get(kind, ())
    return names.index(metric) if metric in names else None


def valid(conn: Connection, job_id: int) -> bool:
    """Whether the job has sort orders built for its current run."""
    stmt = (
        select(func.count())
        .select_from(SortKeyIndex)
        .join(Job, Job.id == SortKeyIndex.job_id)
        .where(SortKeyIndex.job_id == job_id, SortKeyIndex.finished_at == Job.finished_at)
    )
    return bool(conn.scalar(stmt))


def group_select(job_id: int, group: Any, samples: list[int] | None = None) -> Any:
    """``SELECT si, <the kind's metrics>`` of a group (``group``: kind, name, superpixels,
    n_segments, k_frac), one row per sample; ``samples``: only these."""
    kind = group.kind if not isinstance(group, dict) else group["kind"]
    get = (lambda k: group[k]) if isinstance(group, dict) else (lambda k: getattr(group, k))
    if kind in ("pair", "mean"):
        d = Disagreement
        where = [
            d.job_id == job_id,
            d.superpixels == get("superpixels"),
            d.n_segments == get("n_segments"),
            d.k_frac == get("k_frac"),
        ]
        if samples is not None:
            where.append(d.sample_index.in_(samples))
        metrics = [getattr(d, m) for m in METRIC_COLUMNS]
        if kind == "pair":
            a, _, b = str(get("name")).partition("|")
            return select(d.sample_index.label("si"), *metrics).where(
                *where, d.method_a == a, d.method_b == b
            )
        means = [func.avg(m).label(m.key) for m in metrics]
        return select(d.sample_index.label("si"), *means).where(*where).group_by(d.sample_index)
    if kind == "faith":
        f = Faithfulness
        cols = [func.avg(getattr(f, m)).label(m) for m in FAITH_SLOTS]
        stmt = select(f.sample_index.label("si"), *cols).where(
            f.job_id == job_id, f.method == get("name"), f.unit == "pixels"
        )
        if samples is not None:
            stmt = stmt.where(f.sample_index.in_(samples))
        return stmt.group_by(f.sample_index)
    table: Any = AttackResult if kind == "attack" else SampleRow
    stmt = select(table.sample_index.label("si"), *[getattr(table, m) for m in SLOTS[kind]])
    stmt = stmt.where(table.job_id == job_id)
    if samples is not None:
        stmt = stmt.where(table.sample_index.in_(samples))
    return stmt


def _groups(conn: Connection, job_id: int) -> list[dict[str, Any]]:
    """Every group the job's rows make."""
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
    out: list[dict[str, Any]] = []
    for sp, n_seg, k_frac in configs:
        config = {"superpixels": sp, "n_segments": n_seg, "k_frac": k_frac}
        out += [{"kind": "pair", "name": f"{a}|{b}", **config} for a, b in pairs]
        out.append({"kind": "mean", "name": "", **config})
    f = Faithfulness
    for method in conn.scalars(
        select(f.method).where(f.job_id == job_id).distinct().order_by(f.method)
    ):
        out.append({"kind": "faith", "name": str(method)})
    a_ = AttackResult
    if conn.scalar(select(a_.id).where(a_.job_id == job_id).limit(1)) is not None:
        out.append({"kind": "attack", "name": ""})
    out.append({"kind": "sample", "name": ""})
    return out


def _i32(values: np.ndarray) -> bytes:
    return np.asarray(values, dtype="<i4").tobytes()


def _chunks(total: int) -> range:
    return range(0, max(total, 1), CHUNK)


def _orders(conn: Connection, job_id: int, group: dict[str, Any]) -> list[np.ndarray]:
    """Per slot of the group's kind, the sample indices with a value ascending by (value,
    sample index)."""
    result = conn.execute(group_select(job_id, group))
    # the DBAPI's plain tuples (numbers only): building a Row per sample would cost more
    # than the rest of the build
    rows = result.cursor.fetchall() if result.cursor is not None else []
    result.close()
    width = 1 + len(SLOTS[group["kind"]])
    arr = np.array(rows, dtype=np.float64).reshape(-1, width)  # NULL -> NaN
    si = arr[:, 0].astype(np.int64)
    out = []
    for j in range(1, width):
        have = ~np.isnan(arr[:, j])
        out.append(si[have][np.lexsort((si[have], arr[have, j]))].astype(np.int32))
    return out


def _sample_arrays(conn: Connection, job_id: int) -> dict[str, np.ndarray]:
    s = SampleRow
    rows = conn.execute(
        select(s.sample_index, s.label, s.pred, s.correct)
        .where(s.job_id == job_id)
        .order_by(s.sample_index)
    ).all()
    cols = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]

    def ints(values: tuple, null: int) -> np.ndarray:
        return np.array([null if v is None else int(v) for v in values], dtype=np.int64)

    return {
        "sample_index": ints(cols[0], NULL_INT),
        "label": ints(cols[1], NULL_INT),
        "pred": ints(cols[2], NULL_INT),
        "correct": ints(cols[3], -1),
    }


def build_sort_keys(engine: Engine, job_id: int) -> bool:
    """Build (replacing any older) the sort orders of a finished job; ``False`` when it is
    not finished or was run again meanwhile. A group per transaction (memory: one group's
    rows), the index row that makes them valid last."""
    with engine.connect() as conn:
        finished = conn.scalar(select(Job.finished_at).where(Job.id == job_id))
    if finished is None:
        return False
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(delete(SortKeyIndex).where(SortKeyIndex.job_id == job_id))
        _drop(conn, job_id)
        groups = _groups(conn, job_id)
    n_values = 0
    for group in groups:
        with engine.connect() as conn:
            orders = _orders(conn, job_id, group)
        n_values += sum(len(o) for o in orders)
        with engine.begin() as conn:
            group_id = conn.execute(
                insert(SortGroup).returning(SortGroup.id), [{"job_id": job_id, **group}]
            ).scalar_one()
            conn.execute(
                insert(SortOrder),
                [
                    {
                        "group_id": group_id,
                        "slot": slot,
                        "chunk": start // CHUNK,
                        "total": len(order),
                        "samples": _i32(order[start : start + CHUNK]),
                    }
                    for slot, order in enumerate(orders)
                    for start in _chunks(len(order))
                ],
            )
    with engine.connect() as conn:
        attrs = _sample_arrays(conn, job_id)
    with engine.begin() as conn:
        current = conn.scalar(select(Job.finished_at).where(Job.id == job_id))
        if current != finished:  # run again while we read: these orders are of the old run
            _drop(conn, job_id)
            return False
        total = len(attrs["sample_index"])
        conn.execute(
            insert(SortSamples),
            [
                {
                    "job_id": job_id,
                    "chunk": start // CHUNK,
                    "total": total,
                    **{k: _i32(v[start : start + CHUNK]) for k, v in attrs.items()},
                }
                for start in _chunks(total)
            ],
        )
        conn.execute(
            insert(SortKeyIndex),
            [
                {
                    "job_id": job_id,
                    "finished_at": finished,
                    "rows": n_values,
                    "seconds": time.perf_counter() - started,
                }
            ],
        )
    return True


def _drop(conn: Connection, job_id: int) -> None:
    groups = select(SortGroup.id).where(SortGroup.job_id == job_id)
    conn.execute(delete(SortOrder).where(SortOrder.group_id.in_(groups)))
    conn.execute(delete(SortGroup).where(SortGroup.job_id == job_id))
    conn.execute(delete(SortSamples).where(SortSamples.job_id == job_id))


def _decode(blobs: list[bytes]) -> np.ndarray:
    if not blobs:
        return np.zeros(0, dtype=np.int64)
    return np.frombuffer(b"".join(blobs), dtype="<i4")


def order_total(conn: Connection, group_id: int, slot: int) -> int:
    """How many samples the ordering holds."""
    o = SortOrder
    total = conn.scalar(select(o.total).where(o.group_id == group_id, o.slot == slot, o.chunk == 0))
    return int(total or 0)


def order_slice(conn: Connection, group_id: int, slot: int, start: int, stop: int) -> np.ndarray:
    """Positions ``[start, stop)`` of the ascending ordering (reading the chunks holding
    them only)."""
    if stop <= start:
        return np.zeros(0, dtype=np.int64)
    o = SortOrder
    first, last = start // CHUNK, (stop - 1) // CHUNK
    blobs = conn.scalars(
        select(o.samples)
        .where(o.group_id == group_id, o.slot == slot, o.chunk >= first, o.chunk <= last)
        .order_by(o.chunk)
    ).all()
    return _decode(list(blobs))[start - first * CHUNK : stop - first * CHUNK]


def order_all(conn: Connection, group_id: int, slot: int) -> np.ndarray:
    """The whole ascending ordering."""
    o = SortOrder
    blobs = conn.scalars(
        select(o.samples).where(o.group_id == group_id, o.slot == slot).order_by(o.chunk)
    ).all()
    return _decode(list(blobs))


def samples_total(conn: Connection, job_id: int) -> int:
    t = conn.scalar(
        select(SortSamples.total).where(SortSamples.job_id == job_id, SortSamples.chunk == 0)
    )
    return int(t or 0)


def samples_slice(conn: Connection, job_id: int, start: int, stop: int) -> np.ndarray:
    """Sample indices ``[start, stop)`` of the job's samples in index order."""
    if stop <= start:
        return np.zeros(0, dtype=np.int64)
    t = SortSamples
    first, last = start // CHUNK, (stop - 1) // CHUNK
    blobs = conn.scalars(
        select(t.sample_index)
        .where(t.job_id == job_id, t.chunk >= first, t.chunk <= last)
        .order_by(t.chunk)
    ).all()
    return _decode(list(blobs))[start - first * CHUNK : stop - first * CHUNK]


def sample_arrays(
    conn: Connection, job_id: int, columns: list[str] | None = None
) -> dict[str, np.ndarray]:
    """The job's samples in index order: sample_index, label, pred (NULL: :data:`NULL_INT`),
    correct (1, 0; -1 NULL); ``columns``: only these."""
    t = SortSamples
    names = columns or ["sample_index", "label", "pred", "correct"]
    rows = conn.execute(
        select(*[getattr(t, n) for n in names]).where(t.job_id == job_id).order_by(t.chunk)
    ).all()
    return {n: _decode([r[i] for r in rows]) for i, n in enumerate(names)}


def build_sort_keys_quietly(engine: Engine, job_id: int) -> None:
    """After a job was finalised: build its sort orders if it is finished without valid
    ones. Never raises (the gallery falls back to the result rows)."""
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
    "CHUNK",
    "FAITH_SLOTS",
    "NULL_INT",
    "SAMPLE_SLOTS",
    "SLOTS",
    "build_sort_keys",
    "build_sort_keys_quietly",
    "group_select",
    "order_all",
    "order_slice",
    "order_total",
    "sample_arrays",
    "samples_slice",
    "samples_total",
    "slot_of",
    "valid",
]
