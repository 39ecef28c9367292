"""The independent unit of a disagreement statistic: the sample (one image of one dataset).

A disagreement row is one sample under one method pair and one configuration. A group that
holds several rows of the same sample (pooled over ``n_segments``, over ``k_frac``, over the
pairs, or over two jobs on the same dataset) does not hold that many independent values:
the rows of one image move together. Two rules keep such groups honest:

1. **A metric is not repeated over a key it does not depend on.** ``euclidean`` and
   ``euclidean_abs`` compare the whole normalised vectors and ignore ``k_frac``
   (docs/architecture.md, "The metric contract"): a job with ``k_frac`` 0.05 and 0.1 stores
   each distance twice. For those metrics ``k_frac`` is never a group key (their rows show it
   empty) and only the rows of the smallest ``k_frac`` of each job and superpixel
   configuration are read (:func:`metric_sets`), in the exact path and in the digest path.
2. **Groups that can repeat a sample are clustered by sample.** :func:`repeats_samples`
   decides from the jobs' specs whether a group can hold two rows of one image; if so the
   statistics report ``n`` = distinct samples (``rows`` = values used) and the mean's
   interval is cluster-robust (:func:`xaiq.analysis.intervals.cluster_interval`). The
   cluster is ``(dataset, sample_index)``: sample indices are stable per dataset, so the same
   image under two models (two jobs) is one cluster.

The decision reads only the ``jobs`` table (one small query), so the common case, one row
per sample and group, keeps the fast paths of :mod:`xaiq.analysis.exact` and the digests.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, and_, false, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from xaiq.db.models import Disagreement, Job, JobKind

# metrics that do not depend on k_frac (the metric contract)
K_FRAC_FREE = frozenset({"euclidean", "euclidean_abs"})
# configuration keys that can take several values inside one job: key -> row column
WITHIN_JOB = {
    "superpixels": "superpixels",
    "n_segments": "n_segments",
    "k_frac": "k_frac",
    "target": "target_kind",
}
_PAIR_KEYS = ("pair",)


def spec_config_values(job: Job) -> dict[str, list[Any] | None]:
    """Each configuration key's values from the job's spec (a list, or one scalar); ``None``
    when the spec does not say (then the rows must be read). ``target`` of a spec without the
    key is ``[None]``: its rows predate the choice and store NULL."""
    spec = job.spec or {}
    models = spec.get("models")
    # a cross-model job's configuration is every model it compares, not its first one
    model = ",".join(models) if isinstance(models, list) and len(models) > 1 else job.model
    out: dict[str, list[Any] | None] = {"model": [model], "dataset": [job.dataset]}
    for key in WITHIN_JOB:
        value = spec.get(key)
        if isinstance(value, list):
            out[key] = list(value) or None
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            out[key] = [value]
        else:
            out[key] = None
    if out["target"] is None:
        out["target"] = [None]
    return out


@dataclass(frozen=True)
class JobUnits:
    """What a selected disagreement job says about its rows' units."""

    job_id: int
    dataset: str
    model: str
    # every configuration its rows take: (superpixels, n_segments, k_frac, target) tuples
    configs: frozenset[tuple[Any, ...]]
    n_methods: int | None  # methods in the spec (None: unknown)

    def values(self, key: str) -> set[Any]:
        i = list(WITHIN_JOB).index(key)
        return {c[i] for c in self.configs}


def job_units(engine: Engine, job_ids: Sequence[int]) -> dict[int, JobUnits]:
    """The selected disagreement jobs (all of them when ``job_ids`` is empty). A spec's
    lists are a product (every configuration of the lists is computed); a spec that lacks
    one has its configurations read from its rows (one DISTINCT over the job's rows)."""
    stmt = select(Job).where(Job.kind == JobKind.disagreement)
    if job_ids:
        stmt = stmt.where(Job.id.in_(list(job_ids)))
    out = {}
    d = Disagreement
    row_cols = [getattr(d, c) for c in WITHIN_JOB.values()]
    with Session(engine) as session:
        for job in session.scalars(stmt):
            values = spec_config_values(job)
            lists = [values[k] for k in WITHIN_JOB]
            if all(v is not None for v in lists):
                configs = frozenset(itertools.product(*lists))  # type: ignore[arg-type]
            else:
                found = session.execute(select(*row_cols).where(d.job_id == job.id).distinct())
                configs = frozenset(tuple(r) for r in found)
            methods = (job.spec or {}).get("methods")
            out[job.id] = JobUnits(
                job.id,
                job.dataset,
                job.model,
                configs,
                len(methods) if isinstance(methods, list) else None,
            )
    return out


def _project(configs: Iterable[tuple[Any, ...]], keep: Sequence[int]) -> list[tuple[Any, ...]]:
    return [tuple(c[i] for i in keep) for c in configs]


def repeats_samples(
    jobs: dict[int, JobUnits], keys: Sequence[str], *, k_frac_free: bool = False
) -> bool:
    """Whether a group over ``keys`` can hold two rows of the same image: two configurations
    of a job read that no key tells apart (``k_frac_free``: only the smallest ``k_frac`` of
    each configuration is read, as for the distances), pairs pooled (no ``pair`` or
    ``method_a`` + ``method_b`` key while a job has more than two methods), or two jobs on
    one dataset that no key keeps apart. Errs on the side of ``True`` (clustering a group
    of distinct samples changes nothing but the cost)."""
    keyset = set(keys)
    names = list(WITHIN_JOB)
    keyed = [i for i, k in enumerate(names) if k in keyset]
    pair_kept = bool(keyset & set(_PAIR_KEYS)) or {"method_a", "method_b"} <= keyset
    for job in jobs.values():
        if not pair_kept and (job.n_methods is None or job.n_methods > 2):
            return True
        # the configurations read (k_frac free: its smallest value only), told apart?
        read = _read_configs(job, k_frac_free)
        if len(set(_project(read, keyed))) < len(read):
            return True
    if "job" in keyset:
        return False
    by_dataset: dict[str, list[JobUnits]] = {}
    for job in jobs.values():
        by_dataset.setdefault(job.dataset, []).append(job)
    for same in by_dataset.values():
        for i, a in enumerate(same):
            for b in same[i + 1 :]:
                if not _kept_apart(a, b, keyset, keyed):
                    return True
    return False


def _kept_apart(a: JobUnits, b: JobUnits, keys: set[str], keyed: list[int]) -> bool:
    """Two jobs on one dataset never share a group: a key on which they differ for sure."""
    if "model" in keys and a.model != b.model:
        return True
    return bool(keyed) and not set(_project(a.configs, keyed)) & set(_project(b.configs, keyed))


@dataclass(frozen=True)
class MetricSet:
    """Metrics that share their group keys and row restriction."""

    metrics: list[str]
    keys: list[str]  # the group keys for these metrics
    dropped: list[str] = field(default_factory=list)  # keys shown empty on their rows
    where: ColumnElement[bool] | None = None  # rows read (None: all)
    clustered: bool = False  # groups can repeat a sample: n = samples, clustered interval
    dedupe_k_frac: bool = False  # the digest keeps one k_frac cell per configuration


_K = list(WITHIN_JOB).index("k_frac")


def _smallest(job: JobUnits) -> dict[tuple[Any, ...], Any]:
    """(superpixels, n_segments, target) -> the smallest k_frac the job has for it."""
    smallest: dict[tuple[Any, ...], Any] = {}
    for c in job.configs:
        rest = c[:_K] + c[_K + 1 :]
        smallest[rest] = c[_K] if rest not in smallest else min(smallest[rest], c[_K])
    return smallest


def _read_configs(job: JobUnits, k_frac_free: bool) -> set[tuple[Any, ...]]:
    """The configurations whose rows are read: all, or (k_frac free) the smallest k_frac's."""
    if not k_frac_free:
        return set(job.configs)
    return {(*rest[:_K], k, *rest[_K:]) for rest, k in _smallest(job).items()}


def _smallest_k_frac(jobs: dict[int, JobUnits]) -> ColumnElement[bool] | None:
    """The rows of each job's smallest ``k_frac`` per superpixel configuration; ``None`` when
    no job has several."""
    d = Disagreement
    several = [j for j in jobs.values() if len(j.values("k_frac")) > 1]
    if not several:
        return None
    conds: list[ColumnElement[bool]] = [d.job_id.notin_([j.job_id for j in several])]
    for job in several:
        smallest = _smallest(job)
        if len(set(smallest.values())) == 1:  # a product: one k_frac for every configuration
            conds.append(and_(d.job_id == job.job_id, d.k_frac == min(smallest.values())))
            continue
        for (sp, nseg, target), kmin in smallest.items():
            same_target = d.target_kind.is_(None) if target is None else d.target_kind == target
            conds.append(
                and_(
                    d.job_id == job.job_id,
                    d.superpixels == sp,
                    d.n_segments == nseg,
                    same_target,
                    d.k_frac == kmin,
                )
            )
    return or_(false(), *conds)


def metric_sets(
    engine: Engine, jobs: dict[int, JobUnits], keys: Sequence[str], metrics: Sequence[str]
) -> list[MetricSet]:
    """The metrics split by what their groups are (module doc): one set normally; the
    ``k_frac``-free distances apart when ``k_frac`` is a key or varies inside a job.
    ``jobs``: :func:`job_units` of the selection."""
    keys = list(keys)
    free = [m for m in metrics if m in K_FRAC_FREE]
    other = [m for m in metrics if m not in K_FRAC_FREE]
    k_varies = any(len(j.values("k_frac")) > 1 for j in jobs.values())
    if not free or ("k_frac" not in keys and not k_varies):
        return [MetricSet(list(metrics), keys, clustered=repeats_samples(jobs, keys))]
    out = []
    if other:
        out.append(MetricSet(other, keys, clustered=repeats_samples(jobs, keys)))
    # k_frac leaves the distances' keys, unless it is what tells configurations apart (a
    # job whose k_frac goes with n_segments instead of crossing it)
    free_keys = [k for k in keys if k != "k_frac"]
    clustered = repeats_samples(jobs, free_keys, k_frac_free=True)
    if "k_frac" in keys and clustered and not repeats_samples(jobs, keys, k_frac_free=True):
        free_keys, clustered = keys, False
    out.append(
        MetricSet(
            free,
            free_keys,
            dropped=[k for k in keys if k not in free_keys],
            where=_smallest_k_frac(jobs),
            clustered=clustered,
            dedupe_k_frac=True,
        )
    )
    return out


def dataset_codes(jobs: dict[int, JobUnits]) -> dict[int, int]:
    """job id -> a small integer per dataset (the first half of a sample's cluster id)."""
    codes: dict[str, int] = {}
    return {j: codes.setdefault(u.dataset, len(codes)) for j, u in sorted(jobs.items())}


__all__ = [
    "K_FRAC_FREE",
    "WITHIN_JOB",
    "JobUnits",
    "MetricSet",
    "dataset_codes",
    "job_units",
    "metric_sets",
    "repeats_samples",
    "spec_config_values",
]
