"""The Samples gallery's query: one page of a job's samples, filtered and sorted.

A finished job has its orderings stored (:mod:`xaiq.analysis.sortkeys`, built when it
finishes): a page reads the chunk of the chosen ordering that holds it, or, with a label,
prediction or correctness filter, masks the stored ordering with the stored sample labels;
then only the page's samples and values are read. Nothing is sorted and no result row is
scanned, whatever the job's size. Without stored orders (a running job, or one finished
before they existed) a page is ``LIMIT``/``OFFSET`` over an indexed, filtered select: the
samples table alone when no stored metric is asked for; the chosen pair and configuration's
disagreement rows (or one method's faithfulness rows, or the attack rows) when the page is
sorted by a stored metric. With the pair ``all`` the metric is the mean over the pairs at
that configuration, as the report ranks its examples
(:func:`xaiq.report.data.ranked_in_config`). Ties are broken by the sample index in the
sort's direction. Every value a user types is a bound parameter or checked against a fixed
list of names: no SQL is built from user strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Float, cast, func, select

from xaiq.db.errors import QueryError
from xaiq.db.models import (
    METRIC_COLUMNS,
    AttackResult,
    Disagreement,
    Faithfulness,
    SampleErrorRow,
    SampleRow,
)

PAGE_SIZES = (12, 24, 48, 96)
ATTACK_METRICS = ("l0", "l2", "linf", "prob_after", "iterations", "forward_passes")
FAITH_METRICS = ("deletion_auc", "insertion_auc")
SAMPLE_METRICS = ("prob_pred", "prob_target")
MAX_PAGE = 10_000_000


@dataclass
class GalleryQuery:
    """What the page asks for (query parameters, checked by :func:`parse_query`)."""

    metric: str = ""  # "" = sample index order
    pair: str = "all"  # "A|B" or "all"; for faithfulness metrics: the method
    config: str = ""  # "superpixels|n_segments|k_frac" ("" = the first)
    label: int | None = None
    pred: int | None = None
    correct: bool | None = None
    order: str = "desc"
    page: int = 1
    per_page: int = PAGE_SIZES[0]

    def params(self, **changes: Any) -> dict[str, str]:
        """The query string of this query with ``changes`` (for links)."""
        values = {
            "metric": self.metric,
            "pair": self.pair,
            "config": self.config,
            "label": "" if self.label is None else str(self.label),
            "pred": "" if self.pred is None else str(self.pred),
            "correct": "" if self.correct is None else ("yes" if self.correct else "no"),
            "order": self.order,
            "page": str(self.page),
            "per_page": str(self.per_page),
        }
        values.update({k: str(v) for k, v in changes.items()})
        return {k: v for k, v in values.items() if v != ""}


def _int(params: Any, key: str, low: int, high: int) -> int | None:
    raw = (params.get(key) or "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(f"{key} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise QueryError(f"{key} must be in [{low}, {high}], got {value}")
    return value


def parse_query(params: Any) -> GalleryQuery:
    """A :class:`GalleryQuery` from a request's query parameters; :class:`QueryError` names
    the key and value of anything out of place."""
    q = GalleryQuery()
    metric = (params.get("metric") or "").strip()
    known = ("", *METRIC_COLUMNS, *FAITH_METRICS, *ATTACK_METRICS, *SAMPLE_METRICS)
    if metric not in known:
        raise QueryError(f"unknown metric {metric!r}; known: {', '.join(known[1:])}")
    q.metric = metric
    q.pair = (params.get("pair") or "all").strip() or "all"
    q.config = (params.get("config") or "").strip()
    q.label = _int(params, "label", -1, 1_000_000)
    q.pred = _int(params, "pred", -1, 1_000_000)
    correct = (params.get("correct") or "").strip().lower()
    if correct not in ("", "yes", "no"):
        raise QueryError(f"correct must be yes or no, got {correct!r}")
    q.correct = None if not correct else correct == "yes"
    order = (params.get("order") or "desc").strip()
    if order not in ("asc", "desc"):
        raise QueryError(f"order must be asc or desc, got {order!r}")
    q.order = order
    q.page = _int(params, "page", 1, MAX_PAGE) or 1
    per_page = _int(params, "per_page", 1, max(PAGE_SIZES)) or PAGE_SIZES[0]
    q.per_page = per_page
    return q


@dataclass
class GalleryPage:
    query: GalleryQuery
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    pairs: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.per_page))


def digest_choices(engine: Engine, job_id: int) -> tuple[list[str], list[str]] | None:
    """``(pairs, configs)`` from the job's statistics digest (a few hundred rows, built when
    a disagreement job finishes), or ``None`` when it has no valid digest."""
    from xaiq.db.models import DigestCell, Job, StatsDigest

    valid = (
        select(func.count())
        .select_from(Job)
        .join(StatsDigest, StatsDigest.job_id == Job.id)
        .where(Job.id == job_id, StatsDigest.finished_at == Job.finished_at)
    )
    c = DigestCell
    stmt = (
        select(c.method_a, c.method_b, c.superpixels, c.n_segments, c.k_frac)
        .where(c.job_id == job_id)
        .distinct()
    )
    with engine.connect() as conn:
        if not conn.scalar(valid):
            return None
        cells = conn.execute(stmt).all()
    pairs = sorted({f"{a}|{b}" for a, b, *_ in cells})
    configs = sorted({(s, n, k) for _a, _b, s, n, k in cells})
    return pairs, [f"{s}|{n}|{k:g}" for s, n, k in configs]


def job_pairs(engine: Engine, job_id: int) -> list[str]:
    """``A|B`` of every method pair stored for the job (distinct, via the pair index)."""
    stmt = (
        select(Disagreement.method_a, Disagreement.method_b)
        .where(Disagreement.job_id == job_id)
        .distinct()
        .order_by(Disagreement.method_a, Disagreement.method_b)
    )
    with engine.connect() as conn:
        return [f"{a}|{b}" for a, b in conn.execute(stmt)]


def job_configs(engine: Engine, job_id: int, pair: str | None = None) -> list[str]:
    """``superpixels|n_segments|k_frac`` of every configuration of the job (one pair's rows
    suffice: every pair has every configuration)."""
    stmt = select(Disagreement.superpixels, Disagreement.n_segments, Disagreement.k_frac).where(
        Disagreement.job_id == job_id
    )
    if pair:
        a, _, b = pair.partition("|")
        stmt = stmt.where(Disagreement.method_a == a, Disagreement.method_b == b)
    stmt = stmt.distinct().order_by(
        Disagreement.superpixels, Disagreement.n_segments, Disagreement.k_frac
    )
    with engine.connect() as conn:
        return [f"{s}|{n}|{k:g}" for s, n, k in conn.execute(stmt)]


def faith_methods(engine: Engine, job_id: int) -> list[str]:
    stmt = (
        select(Faithfulness.method)
        .where(Faithfulness.job_id == job_id)
        .distinct()
        .order_by(Faithfulness.method)
    )
    with engine.connect() as conn:
        return [str(m) for m in conn.scalars(stmt)]


def parse_config(config: str) -> tuple[str, int, float]:
    """``"grid|49|0.25"`` -> ``("grid", 49, 0.25)``; :class:`QueryError` names a bad one."""
    sp, n, k = (config.split("|") + ["", "", ""])[:3]
    try:
        return sp, int(n), float(k)
    except ValueError:
        raise QueryError(f"config must be superpixels|n_segments|k_frac, got {config!r}") from None


def default_config(configs: list[str]) -> str:
    """The configuration a gallery sorted by a disagreement metric opens at when none is
    chosen: the report's most informative one (:func:`xaiq.report.rank_config.choose_config`:
    the largest top-k, never a top-k of one superpixel when another exists), not the first."""
    from xaiq.report.rank_config import choose_config

    if not configs:
        return ""
    keys = ("superpixels", "n_segments", "k_frac")
    parsed = [{**dict(zip(keys, parse_config(c), strict=True)), "text": c} for c in configs]
    return str(choose_config(parsed, ["text"])["text"])


def _config_where(stmt: Any, config: str) -> Any:
    sp, n_segments, k_frac = parse_config(config)
    return stmt.where(
        Disagreement.superpixels == sp,
        Disagreement.n_segments == n_segments,
        # k_frac is stored as a float: compare within a tolerance, not for equality
        func.abs(Disagreement.k_frac - k_frac) < 1e-9,
    )


def gallery_page(
    engine: Engine, job_id: int, q: GalleryQuery, *, attacked_only: bool = False
) -> GalleryPage:
    """One page of samples: ``sample_index, key, label, pred, correct, prob_pred, value``
    (``value``: the sorting metric, None without one), plus the total count and the
    choices (pairs, configurations, faithfulness methods) the filters offer.
    ``attacked_only``: only samples with an attack result (an attack job attacks some)."""
    from xaiq.analysis import sortkeys

    with engine.connect() as conn:
        keyed = sortkeys.valid(conn, job_id)
    if keyed:
        return _keyed_page(engine, job_id, q, attacked_only)
    page = GalleryPage(query=q)
    choices = digest_choices(engine, job_id)
    if choices is not None:
        page.pairs, page.configs = choices
    else:
        page.pairs = job_pairs(engine, job_id)
        page.configs = job_configs(engine, job_id, page.pairs[0] if page.pairs else None)
    page.methods = faith_methods(engine, job_id)
    s = SampleRow
    base = [s.sample_index, s.key, s.label, s.pred, s.correct, s.prob_pred]
    value: Any = None
    stmt: Any
    if q.metric in METRIC_COLUMNS:
        if not page.pairs:
            raise QueryError(f"job {job_id} has no disagreement rows to sort by {q.metric}")
        if q.pair != "all" and q.pair not in page.pairs:
            raise QueryError(f"unknown pair {q.pair!r}; this job's: {', '.join(page.pairs)}")
        config = q.config or default_config(page.configs)
        if config not in page.configs:
            raise QueryError(f"unknown config {config!r}; this job's: {', '.join(page.configs)}")
        q.config = config
        col = getattr(Disagreement, q.metric)
        if q.label is None and q.pred is None and q.correct is None:
            return _ranked_page(engine, page, job_id, q.pair, config, col)
        if q.pair != "all":  # one row per sample at one pair and configuration: a plain join
            a, _, b = q.pair.partition("|")
            d = Disagreement
            value = col
            stmt = _config_where(
                select(*base, col.label("sort_value"))
                .join(d, (d.job_id == s.job_id) & (d.sample_index == s.sample_index))
                .where(d.job_id == job_id, d.method_a == a, d.method_b == b)
                .where(col.is_not(None)),
                config,
            )
            return _finish(engine, page, job_id, stmt, value)
        means: Any = select(
            Disagreement.sample_index.label("si"),
            func.avg(cast(col, Float)).label("v"),
        ).where(Disagreement.job_id == job_id, col.is_not(None))
        means = _config_where(means, config).group_by(Disagreement.sample_index).subquery()
        value = means.c.v
        stmt = select(*base, value.label("sort_value")).join(means, means.c.si == s.sample_index)
    elif q.metric in FAITH_METRICS:
        if not page.methods:
            raise QueryError(f"job {job_id} has no faithfulness rows to sort by {q.metric}")
        method = q.pair if q.pair in page.methods else page.methods[0]
        q.pair = method
        col = getattr(Faithfulness, q.metric)
        inner = (
            select(Faithfulness.sample_index.label("si"), func.avg(col).label("v"))
            .where(Faithfulness.job_id == job_id, Faithfulness.method == method)
            .where(Faithfulness.unit == "pixels", col.is_not(None))
            .group_by(Faithfulness.sample_index)
            .subquery()
        )
        value = inner.c.v
        stmt = select(*base, value.label("sort_value")).join(inner, inner.c.si == s.sample_index)
    elif q.metric in SAMPLE_METRICS:  # every sample (of an attack job too)
        value = getattr(s, q.metric)
        stmt = select(*base, value.label("sort_value"))
    elif q.metric in ATTACK_METRICS or attacked_only:
        value = getattr(AttackResult, q.metric or "l0")
        stmt = select(*base, value.label("sort_value")).join(
            AttackResult,
            (AttackResult.job_id == s.job_id) & (AttackResult.sample_index == s.sample_index),
        )
    else:
        stmt = select(*base)
    return _finish(engine, page, job_id, stmt, value)


def _ranked_page(
    engine: Engine, page: GalleryPage, job_id: int, pair: str, config: str, col: Any
) -> GalleryPage:
    """No sample filter: the page is ordered and cut on the disagreement rows alone (one
    pair's value, or the mean over the pairs per sample) without a join over every row; then
    only the page's samples are read."""
    q, d, s = page.query, Disagreement, SampleRow
    base = select(d.sample_index).where(d.job_id == job_id, col.is_not(None))
    if pair != "all":
        a, _, b = pair.partition("|")
        value: Any = col
        ranked_q = _config_where(
            base.add_columns(col).where(d.method_a == a, d.method_b == b), config
        )
        count = select(func.count()).select_from(ranked_q.subquery())
    else:
        value = func.avg(cast(col, Float))
        ranked_q = _config_where(base.add_columns(value), config).group_by(d.sample_index)
        count = _config_where(
            select(func.count(d.sample_index.distinct())).where(
                d.job_id == job_id, col.is_not(None)
            ),
            config,
        )
    stmt = ranked_q.order_by(*_ordered(q, value, d.sample_index))
    stmt = stmt.limit(q.per_page).offset((q.page - 1) * q.per_page)
    with engine.connect() as conn:
        page.total = int(conn.scalar(count) or 0)
        ranked = conn.execute(stmt).all()
        indices = [int(i) for i, _ in ranked]
        found = {
            int(r.sample_index): dict(r._mapping)
            for r in conn.execute(
                select(s.sample_index, s.key, s.label, s.pred, s.correct, s.prob_pred).where(
                    s.job_id == job_id, s.sample_index.in_(indices)
                )
            )
        }
    for idx, v in ranked:
        row = found.get(int(idx), {"sample_index": int(idx), "key": None, "label": None})
        page.rows.append({**row, "value": None if v is None else float(v)})
    return page


def _finish(engine: Engine, page: GalleryPage, job_id: int, stmt: Any, value: Any) -> GalleryPage:
    """Filters, count, order and the page's ``LIMIT``/``OFFSET``, then the rows."""
    q, s = page.query, SampleRow
    stmt = stmt.where(s.job_id == job_id)
    if q.label is not None:
        stmt = stmt.where(s.label == q.label)
    if q.pred is not None:
        stmt = stmt.where(s.pred == q.pred)
    if q.correct is not None:
        stmt = stmt.where(s.correct.is_(q.correct))
    count = select(func.count()).select_from(stmt.subquery())
    if value is not None and q.metric:
        stmt = stmt.order_by(*_ordered(q, value, s.sample_index))
    else:
        stmt = stmt.order_by(s.sample_index)
    stmt = stmt.limit(q.per_page).offset((q.page - 1) * q.per_page)
    with engine.connect() as conn:
        page.total = int(conn.scalar(count) or 0)
        for r in conn.execute(stmt):
            row = dict(r._mapping)
            row["value"] = row.pop("sort_value", None)
            page.rows.append(row)
    return page


def _ordered(q: GalleryQuery, value: Any, index: Any) -> tuple[Any, Any]:
    """``ORDER BY value, sample_index`` in the query's direction (ties by sample index in the
    same direction, so that one index walked forwards or backwards serves both)."""
    if q.order == "desc":
        return value.desc(), index.desc()
    return value.asc(), index.asc()


def _keyed_page(engine: Engine, job_id: int, q: GalleryQuery, attacked_only: bool) -> GalleryPage:
    """The page from the job's stored sort orders (:mod:`xaiq.analysis.sortkeys`): the chosen
    group's ordering cut to the page (filtered by the stored sample labels when asked), then
    the page's samples and values read by index."""
    from xaiq.db.models import SortGroup

    page = GalleryPage(query=q)
    g = SortGroup
    with engine.connect() as conn:
        groups = conn.execute(
            select(g.id, g.kind, g.name, g.superpixels, g.n_segments, g.k_frac).where(
                g.job_id == job_id
            )
        ).all()
    configs = sorted({(r.superpixels, r.n_segments, r.k_frac) for r in groups if r.kind == "pair"})
    config_names = [f"{sp}|{n}|{k:g}" for sp, n, k in configs]
    page.pairs = sorted({r.name for r in groups if r.kind == "pair"})
    page.configs = config_names
    page.methods = sorted({r.name for r in groups if r.kind == "faith"})
    kind, name, config = "sample", "", None
    if q.metric in METRIC_COLUMNS:
        if not page.pairs:
            raise QueryError(f"job {job_id} has no disagreement rows to sort by {q.metric}")
        if q.pair != "all" and q.pair not in page.pairs:
            raise QueryError(f"unknown pair {q.pair!r}; this job's: {', '.join(page.pairs)}")
        chosen = q.config or (config_names[0] if config_names else "")
        if chosen not in config_names:
            raise QueryError(f"unknown config {chosen!r}; this job's: {', '.join(config_names)}")
        q.config = chosen
        config = configs[config_names.index(chosen)]
        kind, name = ("mean", "") if q.pair == "all" else ("pair", q.pair)
    elif q.metric in FAITH_METRICS:
        if not page.methods:
            raise QueryError(f"job {job_id} has no faithfulness rows to sort by {q.metric}")
        name = q.pair if q.pair in page.methods else page.methods[0]
        q.pair = name
        kind = "faith"
    elif q.metric in SAMPLE_METRICS:
        kind = "sample"
    elif q.metric in ATTACK_METRICS or attacked_only:
        kind = "attack"
    match = next(
        (
            r
            for r in groups
            if r.kind == kind
            and r.name == name
            and (config is None or (r.superpixels, r.n_segments, r.k_frac) == config)
        ),
        None,
    )
    if match is None:  # e.g. an attack job whose every sample failed: nothing to show
        return page
    with engine.connect() as conn:
        indices, values = _keyed_rows(conn, job_id, match, q)
        page.total = indices[1]
        shown = indices[0]
        s = SampleRow
        found = {
            int(r.sample_index): dict(r._mapping)
            for r in conn.execute(
                select(s.sample_index, s.key, s.label, s.pred, s.correct, s.prob_pred).where(
                    s.job_id == job_id, s.sample_index.in_(shown)
                )
            )
        }
    for idx in shown:
        row = found.get(idx, {"sample_index": idx, "key": None, "label": None})
        page.rows.append({**row, "value": values.get(idx)})
    return page


def _keyed_rows(
    conn: Any, job_id: int, group: Any, q: GalleryQuery
) -> tuple[tuple[list[int], int], dict[int, float | None]]:
    """``((the page's sample indices, total), {sample: value shown})`` from the stored
    orders: the page's chunk alone without a filter; with one, the whole ordering masked by
    the stored labels, predictions and correctness."""
    import numpy as np

    from xaiq.analysis import sortkeys

    kind = group.kind
    slot = sortkeys.slot_of(kind, q.metric) if q.metric else None
    # without a metric: index order (an attack job: of the attacked samples, with their l0)
    shown_slot = slot if slot is not None else (0 if kind == "attack" else None)
    filtered = q.label is not None or q.pred is not None or q.correct is not None
    lo = (q.page - 1) * q.per_page
    order: Any
    if shown_slot is None or slot is None:
        # index order: of every sample, or of those the attack group holds
        if kind == "attack":
            order = np.sort(sortkeys.order_all(conn, group.id, 0))
        elif not filtered:
            total = sortkeys.samples_total(conn, job_id)
            page = sortkeys.samples_slice(conn, job_id, lo, min(lo + q.per_page, total))
            return ([int(i) for i in page], total), {}
        else:
            order = sortkeys.sample_arrays(conn, job_id, ["sample_index"])["sample_index"]
        descending = False
    else:
        descending = q.order == "desc"
        if not filtered:
            total = sortkeys.order_total(conn, group.id, slot)
            if descending:
                start, stop = max(total - lo - q.per_page, 0), max(total - lo, 0)
                page = sortkeys.order_slice(conn, group.id, slot, start, stop)[::-1]
            else:
                page = sortkeys.order_slice(conn, group.id, slot, lo, min(lo + q.per_page, total))
            picked = [int(i) for i in page]
            return (picked, total), _values(conn, job_id, group, slot, picked)
        order = sortkeys.order_all(conn, group.id, slot)
    if filtered:
        passing = _matching(conn, job_id, q)
        inside = order < len(passing)  # a result row without a sample row passes no filter
        keep = np.zeros(len(order), dtype=bool)
        keep[inside] = passing[order[inside]]
        order = order[keep]
    if descending:
        order = order[::-1]
    picked = [int(i) for i in order[lo : lo + q.per_page]]
    values = _values(conn, job_id, group, shown_slot, picked) if shown_slot is not None else {}
    return (picked, len(order)), values


def _matching(conn: Any, job_id: int, q: GalleryQuery) -> Any:
    """A boolean array by sample index: the samples passing the query's filters (read from
    the stored sample columns the filters need only)."""
    import numpy as np

    from xaiq.analysis import sortkeys

    wanted = [
        k
        for k, v in (("label", q.label), ("pred", q.pred), ("correct", q.correct))
        if v is not None
    ]
    cols = sortkeys.sample_arrays(conn, job_id, ["sample_index", *wanted])
    index = cols["sample_index"]
    keep = np.ones(len(index), dtype=bool)
    for key in wanted:
        want = getattr(q, key)
        keep &= cols[key] == (int(want) if key != "correct" else (1 if want else 0))
    size = int(index[-1]) + 1 if len(index) else 0
    if len(index) == size:  # samples 0..n-1, as planned jobs have them: index = position
        return keep
    out = np.zeros(size, dtype=bool)
    out[index[keep]] = True
    return out


def _values(
    conn: Any, job_id: int, group: Any, slot: int, samples: list[int]
) -> dict[int, float | None]:
    """The value of metric ``slot`` of the group for each of ``samples`` (from the rows)."""
    from xaiq.analysis.sortkeys import group_select

    if not samples:
        return {}
    out = {}
    for row in conn.execute(group_select(job_id, group, samples)):
        v = row[1 + slot]
        out[int(row[0])] = None if v is None else float(v)
    return out


def sample_errors(engine: Engine, job_id: int, sample_index: int) -> list[dict[str, Any]]:
    stmt = select(SampleErrorRow.stage, SampleErrorRow.message, SampleErrorRow.attempt).where(
        SampleErrorRow.job_id == job_id, SampleErrorRow.sample_index == sample_index
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


__all__ = [
    "ATTACK_METRICS",
    "FAITH_METRICS",
    "PAGE_SIZES",
    "GalleryPage",
    "GalleryQuery",
    "gallery_page",
    "job_configs",
    "job_pairs",
    "parse_query",
    "sample_errors",
]
