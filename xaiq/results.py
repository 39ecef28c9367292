"""Results as pandas DataFrames, with each sample's fields joined in.

::

    import xaiq.results

    res = xaiq.results.open()                      # the store of XAIQ_DB_URL / XAIQ_HOME
    res = xaiq.results.open("sqlite:///run.sqlite")  # or a URL, or an SQLAlchemy Engine
    d = res.disagreements(1)                       # one row per sample x pair x configuration
    d.groupby(["method_a", "method_b", "n_segments", "correct"]).euclidean.mean()
    res.stats(1)                                   # `xaiq stats disagreement --job 1`
    res.compare("correct", 1)                      # `... --compare correct`
    res.jobs()                                     # `xaiq list`: one row per job
    res.stats("baseline")                          # a job name selects every job of that name
    res.map(1, 0, "saliency")                      # one stored map as numpy [H, W]
    res.attack_image(2, 0)                         # an attack's final image [C, H, W]

Every result frame (:meth:`Results.disagreements`, :meth:`~Results.attributions`,
:meth:`~Results.attacks`, :meth:`~Results.attack_strategies`, :meth:`~Results.faithfulness`,
:meth:`~Results.sanity_checks`)
has the table's columns and then :data:`xaiq.db.joined.SAMPLE_FIELDS`: ``key``, ``label``,
``pred``, ``correct`` and ``confidence`` (the softmax probability of the prediction). NULL is
``NaN`` / ``None`` / ``<NA>`` as pandas types the column. ``job`` is one id, a list of
ids, a job name (``submit --name``: every job of that name), a list of ids and names, or
``None`` for every job. :meth:`Results.stats` and :meth:`Results.compare` return the
statistics tables of ``xaiq stats disagreement`` (the pooling rule, intervals and NULL
reasons included) with the title in ``DataFrame.attrs["title"]``. Every frame method returns one
DataFrame; :meth:`Results.sanity` keeps the verdicts in ``attrs["verdicts"]`` as well as
returning them from :meth:`Results.sanity_verdicts`.
:meth:`Results.map` and
:meth:`Results.attack_image` read one stored array from the artifact store (``XAIQ_ARTIFACTS``,
or the ``artifacts`` given to :func:`open`) wherever and however it is stored: a directory or
an object store, one object per sample or a ranged read of a shard's chunk, float32 or
float16 (returned as stored), its sha256 checked.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from xaiq.db.jobs import check_jobs
from xaiq.db.joined import joined_select
from xaiq.db.labels import job_tags, jobs_with_tags, resolve_jobs
from xaiq.db.models import (
    AttackResult,
    AttackStrategyResult,
    Attribution,
    Disagreement,
    Faithfulness,
    Job,
    SampleRow,
    SanityCheck,
)

JobSelection = int | str | Iterable[int | str] | None
JOB_COLUMNS = [
    "job",
    "name",
    "tags",
    "kind",
    "status",
    "dataset",
    "model",
    "models",
    "samples",
    "priority",
    "queue",
    "seed",
    "created_at",
    "started_at",
    "finished_at",
    "error",
]


class Results:
    """Read-only access to one store; every frame method returns a new ``pandas.DataFrame``,
    :meth:`map` and :meth:`attack_image` a ``numpy.ndarray``."""

    def __init__(self, engine: Engine, artifacts: str | None = None) -> None:
        self.engine = engine
        self.artifacts = artifacts  # None: XAIQ_ARTIFACTS when an array is read

    def _array(self, what: str, found: Any) -> np.ndarray:
        from xaiq.db.artifacts import read_artifact
        from xaiq.db.store import open_store

        if found is None or found[0] is None:
            raise LookupError(f"{what}: no such row with a stored array")
        data = read_artifact(found[0], found[1], open_store(self.artifacts))
        return np.load(io.BytesIO(data), allow_pickle=False)

    def map(self, job: int, sample_index: int, method: str, model: str | None = None) -> np.ndarray:
        """The map ``[H, W]`` of ``method`` for one sample of ``job`` (an attribution or
        disagreement job; a cross-model job names the map's ``model``, or the method as
        ``model:method``). :class:`LookupError` when the job has no such map."""
        check_jobs(self.engine, [int(job)])
        name = method if model is None or ":" in method else f"{model}:{method}"
        stmt = select(Attribution.artifact, Attribution.checksum).where(
            Attribution.job_id == int(job),
            Attribution.sample_index == int(sample_index),
            Attribution.method.in_([name, method]),
        )
        if model is not None:
            stmt = stmt.where(Attribution.model == model)
        with self.engine.connect() as conn:
            found = conn.execute(stmt.order_by(Attribution.id).limit(1)).first()
        return self._array(f"job {job} sample {sample_index} method {method!r}", found)

    def attack_image(self, job: int, sample_index: int, strategy: str | None = None) -> np.ndarray:
        """The final image ``[C, H, W]`` (model input space) of an attack on one sample; with
        ``strategy``, that strategy's image in a ``--compare`` job."""
        check_jobs(self.engine, [int(job)])
        if strategy is None:
            stmt = select(AttackResult.artifact, AttackResult.checksum).where(
                AttackResult.job_id == int(job), AttackResult.sample_index == int(sample_index)
            )
        else:
            stmt = select(AttackStrategyResult.artifact, AttackStrategyResult.checksum).where(
                AttackStrategyResult.job_id == int(job),
                AttackStrategyResult.sample_index == int(sample_index),
                AttackStrategyResult.strategy == strategy,
            )
        with self.engine.connect() as conn:
            found = conn.execute(stmt.limit(1)).first()
        what = f"job {job} sample {sample_index} attack image" + (
            f" of strategy {strategy!r}" if strategy else ""
        )
        return self._array(what, found)

    def _jobs(self, job: JobSelection) -> list[int]:
        """The ids ``job`` selects (names resolved), each checked to exist."""
        if job is None:
            return []
        items = [job] if isinstance(job, int | str) else list(job)
        return check_jobs(self.engine, resolve_jobs(self.engine, items))

    def jobs(
        self, job: JobSelection = None, *, tags: str | Iterable[str] = (), name: str | None = None
    ) -> pd.DataFrame:
        """One row per job, newest first (``xaiq list``): id, name, tags (a list), kind,
        status, dataset, model (the first) and models (every model of a cross-model job),
        samples, priority, queue, seed and its times; ``tags``: only the jobs with every one
        of them, ``name``: only the jobs of that name."""
        from sqlalchemy.orm import Session

        ids = self._jobs(job)
        wanted = [tags] if isinstance(tags, str) else list(tags)
        stmt = select(Job).order_by(Job.id.desc())
        if ids:
            stmt = stmt.where(Job.id.in_(ids))
        if wanted:
            stmt = stmt.where(Job.id.in_(jobs_with_tags(wanted)))
        if name is not None:
            stmt = stmt.where(Job.name == name)
        rows = []
        with Session(self.engine) as session:
            found = list(session.scalars(stmt))
            labels = job_tags(session, [j.id for j in found])
            for j in found:
                models = (j.spec or {}).get("models") or [j.model]
                rows.append(
                    {
                        "job": j.id,
                        "name": j.name,
                        "tags": labels.get(j.id, []),
                        "kind": j.kind.value,
                        "status": j.status.value,
                        "dataset": j.dataset,
                        "model": j.model,
                        "models": list(models),
                        "samples": j.n_samples,
                        "priority": j.priority,
                        "queue": j.queue,
                        "seed": j.seed,
                        "created_at": j.created_at,
                        "started_at": j.started_at,
                        "finished_at": j.finished_at,
                        "error": j.error,
                    }
                )
        return pd.DataFrame(rows, columns=JOB_COLUMNS)

    def _frame(self, model: Any, job: JobSelection) -> pd.DataFrame:
        jobs = self._jobs(job)
        stmt = joined_select(model.__table__, jobs)
        with self.engine.connect() as conn:
            result = conn.execute(stmt)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def disagreements(self, job: JobSelection = None) -> pd.DataFrame:
        """One row per sample x method pair x configuration, sample fields joined."""
        return self._frame(Disagreement, job)

    def attributions(self, job: JobSelection = None) -> pd.DataFrame:
        """One row per sample x method (map statistics; the map is the ``artifact`` file)."""
        return self._frame(Attribution, job)

    def attacks(self, job: JobSelection = None) -> pd.DataFrame:
        """One row per attacked sample (and strategy, where the job compares strategies)."""
        return self._frame(AttackResult, job)

    def attack_strategies(self, job: JobSelection = None) -> pd.DataFrame:
        """One row per attacked sample x strategy: each strategy's own attack (every strategy
        of a ``--compare`` job; the strategies tried along a fallback chain otherwise)."""
        return self._frame(AttackStrategyResult, job)

    def faithfulness(self, job: JobSelection = None) -> pd.DataFrame:
        """Deletion / insertion AUCs per sample x method x unit."""
        return self._frame(Faithfulness, job)

    def sanity_checks(self, job: JobSelection = None) -> pd.DataFrame:
        """Model-randomisation sanity-check rows."""
        return self._frame(SanityCheck, job)

    def samples(self, job: JobSelection = None) -> pd.DataFrame:
        """The model's view of every sample (label, prediction, probabilities)."""
        jobs = self._jobs(job)
        cols = [c for c in SampleRow.__table__.columns if c.name != "id"]
        stmt = select(*cols).order_by(SampleRow.job_id, SampleRow.sample_index)
        if jobs:
            stmt = stmt.where(SampleRow.job_id.in_(jobs))
        with self.engine.connect() as conn:
            result = conn.execute(stmt)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def stats(
        self,
        job: JobSelection = None,
        group_by: str | Iterable[str] = "pair",
        metrics: str | Iterable[str] | None = None,
        *,
        pool: bool = False,
    ) -> pd.DataFrame:
        """``xaiq stats disagreement`` as a frame (one row per group and metric)."""
        from xaiq.analysis.stats_table import disagreement_table

        table = disagreement_table(self.engine, self._jobs(job), group_by, metrics, pool=pool)
        return _table_frame(table)

    def compare(
        self,
        key: str,
        job: JobSelection = None,
        group_by: str | Iterable[str] = "pair",
        metrics: str | Iterable[str] | None = None,
        *,
        pool: bool = False,
        adjust: str = "holm",
    ) -> pd.DataFrame:
        """``xaiq stats disagreement --compare KEY`` as a frame (``p_adjusted``: ``p_value``
        adjusted over the table's tests, ``adjust`` = holm, bh or none)."""
        from xaiq.analysis.compare import compare_table

        table = compare_table(
            self.engine, self._jobs(job), group_by, key, metrics, pool=pool, adjust=adjust
        )
        return _table_frame(table)

    def faithfulness_stats(
        self, job: JobSelection = None, group_by: str | Iterable[str] = "method"
    ) -> pd.DataFrame:
        """``xaiq stats faithfulness`` as a frame (one row per group and unit)."""
        from xaiq.analysis.faithfulness import faithfulness_stats

        return pd.DataFrame(faithfulness_stats(self.engine, self._jobs(job), group_by))

    def faithfulness_pairs(self, job: JobSelection = None, **options: Any) -> pd.DataFrame:
        """``xaiq stats faithfulness --pairs`` as a frame (``metric``, ``criterion``,
        ``unit`` as :func:`xaiq.analysis.faithfulness.faithfulness_pairs`)."""
        from xaiq.analysis.faithfulness import faithfulness_pairs

        return pd.DataFrame(faithfulness_pairs(self.engine, self._jobs(job), **options))

    def map_stats(self, job: JobSelection = None) -> pd.DataFrame:
        """``xaiq stats maps`` as a frame: sparseness and complexity per job, model and
        method (:func:`xaiq.analysis.map_stats.map_property_stats`)."""
        from xaiq.analysis.map_stats import map_property_stats

        return pd.DataFrame(map_property_stats(self.engine, self._jobs(job)))

    def protocol(self, job: int) -> dict[str, Any] | None:
        """Job ``job``'s protocol card (a dict as stored; None for a job planned before
        cards existed)."""
        from xaiq.db.protocol import job_protocols

        return job_protocols(self.engine, [int(job)])[int(job)]

    def protocols(self, job: JobSelection = None) -> pd.DataFrame:
        """One row per job: ``job`` and the card's fields as dotted columns
        (``faithfulness.ties``, ``runtime[0].device``, ...)."""
        from xaiq.db.protocol import job_protocols, protocol_rows

        rows = []
        for j, card in job_protocols(self.engine, self._jobs(job)).items():
            fields = {r["field"]: r["value"] for r in protocol_rows(card)}
            rows.append({"job": j, **fields})
        return pd.DataFrame(rows)

    def sanity(self, job: JobSelection = None, threshold: float = 0.5) -> pd.DataFrame:
        """``xaiq stats sanity``: one row per method and randomised layer; the verdict per
        method is in ``attrs["verdicts"]`` (also :meth:`sanity_verdicts`)."""
        from xaiq.analysis.faithfulness import sanity_stats

        per_layer, verdicts = sanity_stats(self.engine, self._jobs(job), threshold=threshold)
        frame = pd.DataFrame(per_layer)
        frame.attrs["title"] = "sanity check per layer (95% intervals)"
        frame.attrs["verdicts"] = pd.DataFrame(verdicts)
        return frame

    def sanity_verdicts(self, job: JobSelection = None, threshold: float = 0.5) -> pd.DataFrame:
        """``xaiq stats sanity --verdicts``: one verdict per method (a map that survives the
        model's randomisation fails)."""
        from xaiq.analysis.faithfulness import sanity_stats

        _, verdicts = sanity_stats(self.engine, self._jobs(job), threshold=threshold)
        frame = pd.DataFrame(verdicts)
        frame.attrs["title"] = "sanity verdicts (a map that survives fails)"
        return frame


def _table_frame(table: Any) -> pd.DataFrame:
    frame = pd.DataFrame(table.rows, columns=table.columns)
    frame.attrs["title"] = table.title
    return frame


def open(  # noqa: A001 - the documented name
    store: str | Engine | None = None, artifacts: str | None = None
) -> Results:
    """Results of the store at ``store``: an SQLAlchemy ``Engine``, a database URL, or
    ``None`` for the configured default (``XAIQ_DB_URL``, else SQLite under ``XAIQ_HOME``).
    ``artifacts``: where the arrays are (a path or URL; default ``XAIQ_ARTIFACTS``)."""
    if isinstance(store, Engine):
        return Results(store, artifacts)
    from xaiq.db.session import get_engine

    return Results(get_engine(store), artifacts)


__all__ = ["Results", "open"]
