"""Typed SQLAlchemy 2 models. Unique keys make every result write idempotent.

Rows for one sample are keyed by (job, sample_index [, method [, pair, configuration]]);
large arrays live in artifact files (path relative to the artifact root, sha256 checksum).
Times are naive UTC.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

IntPK = Annotated[int, mapped_column(Integer, primary_key=True, autoincrement=True)]
JobFK = Annotated[int, mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)]
SampleIndex = Annotated[int, mapped_column(Integer)]
Name = Annotated[str, mapped_column(String(128))]
OptFloat = Annotated[float | None, mapped_column(Float, nullable=True)]
Timestamp = Annotated[dt.datetime | None, mapped_column(DateTime, nullable=True)]
# which class a map explains: "pred" or "label" (NULL: rows written before the choice existed,
# which explained the label, else the prediction)
TargetKind = Annotated[str | None, mapped_column(String(8), nullable=True)]
# the model a map came from (NULL: the job's model); cross-model jobs name it on every row
OptModel = Annotated[str | None, mapped_column(String(1024), nullable=True)]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


# the kinds registered in xaiq.scheduler.kinds, in its order (the store may not import the
# scheduler: tests/jobs/test_kinds.py keeps the two in step)
class JobKind(enum.StrEnum):
    attribution = "attribution"
    disagreement = "disagreement"
    attack = "attack"


# a status changes only through xaiq.db.transitions (its tables list the allowed changes)
class JobStatus(enum.StrEnum):
    pending = "pending"  # committed, nothing run yet
    running = "running"
    succeeded = "succeeded"  # every shard done, no sample errors
    partial = "partial"  # finished, some shards failed or some samples errored
    failed = "failed"  # finished, nothing succeeded
    cancelled = "cancelled"
    # stopped by its in-process owner (Ctrl-C, SIGTERM) or found without a live owner: the
    # committed rows are kept, ``xaiq resume`` continues it. Not final (no ``finished_at``).
    interrupted = "interrupted"


class ShardStatus(enum.StrEnum):
    pending = "pending"  # waiting for the scheduler to publish it
    queued = "queued"  # published to the broker
    running = "running"  # a worker holds the lease
    done = "done"
    failed = "failed"  # past the attempt cap; ``error`` says why
    cancelled = "cancelled"


def _enum(cls: type[enum.Enum]) -> Enum:
    # stored by value, as a plain string column (no native PostgreSQL enum to migrate)
    return Enum(cls, values_callable=lambda e: [m.value for m in e], native_enum=False, length=16)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[IntPK]
    kind: Mapped[JobKind] = mapped_column(_enum(JobKind))
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), default=JobStatus.pending)
    spec: Mapped[dict] = mapped_column(JSON)
    dataset: Mapped[str] = mapped_column(String(1024))
    model: Mapped[str] = mapped_column(String(1024))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    seed: Mapped[int] = mapped_column(BigInteger, default=0)
    queue: Mapped[str] = mapped_column(String(32), default="cpu")
    n_samples: Mapped[int] = mapped_column(Integer)
    shard_size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[Timestamp]
    finished_at: Mapped[Timestamp]
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the process running an in-process job (``host:pid``) and when it last said so
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    owner_seen_at: Mapped[Timestamp]
    # the user's label for the job (``submit --name``): not unique, `--job NAME` selects all
    name: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    # the protocol card (docs/faithfulness.md): what the numbers mean, written at submit;
    # each worker that runs the job adds its device, versions and weights' sha256
    protocol: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class JobTag(Base):
    """One tag of a job (``submit --tag``, repeatable); ``xaiq list --tag`` filters on it."""

    __tablename__ = "job_tags"
    __table_args__ = (
        UniqueConstraint("job_id", "tag", name="uq_job_tag"),
        Index("ix_job_tags_tag", "tag"),
    )

    id: Mapped[IntPK]
    job_id: Mapped[JobFK]
    tag: Mapped[str] = mapped_column(String(64))


class Shard(Base):
    __tablename__ = "shards"
    __table_args__ = (
        UniqueConstraint("job_id", "index", name="uq_shard_job_index"),
        Index("ix_shard_status", "status"),
    )

    id: Mapped[IntPK]
    job_id: Mapped[JobFK]
    index: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column(Integer)  # first sample index
    stop: Mapped[int] = mapped_column(Integer)  # one past the last
    status: Mapped[ShardStatus] = mapped_column(_enum(ShardStatus), default=ShardStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires_at: Mapped[Timestamp]
    published_at: Mapped[Timestamp]
    started_at: Mapped[Timestamp]
    finished_at: Mapped[Timestamp]
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # samples of this shard whose rows are written or computed so far (progress by batch)
    samples_done: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # the stage its running batch is in and the samples each stage has finished (kept ones
    # included), written with the progress: ``{stage: n}`` (xaiq.worker.stages)
    stage: Mapped[str | None] = mapped_column(String(16), nullable=True)
    stage_done: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class SampleRow(Base):
    """The model's view of one sample (shared by every job kind)."""

    __tablename__ = "samples"
    __table_args__ = (UniqueConstraint("job_id", "sample_index", name="uq_sample"),)

    id: Mapped[IntPK]
    job_id: Mapped[JobFK]
    sample_index: Mapped[SampleIndex]
    key: Mapped[str] = mapped_column(String(1024))
    label: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pred: Mapped[int] = mapped_column(Integer)
    target: Mapped[int] = mapped_column(Integer)  # reference class: label, else prediction
    prob_pred: Mapped[float] = mapped_column(Float)
    prob_target: Mapped[float] = mapped_column(Float)
    correct: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    probs: Mapped[list | None] = mapped_column(JSON, nullable=True)  # top classes, see worker


class Attribution(Base):
    __tablename__ = "attributions"
    __table_args__ = (
        UniqueConstraint("job_id", "sample_index", "method", name="uq_attribution"),
        Index("ix_attributions_map_key", "map_key"),
    )

    id: Mapped[IntPK]
    job_id: Mapped[JobFK]
    sample_index: Mapped[SampleIndex]
    method: Mapped[Name]
    target: Mapped[int] = mapped_column(Integer)
    target_kind: Mapped[TargetKind]
    model: Mapped[OptModel]
    artifact: Mapped[str] = mapped_column(String(1024))  # relative to the artifact root
    checksum: Mapped[str] = mapped_column(String(64))  # sha256 of the artifact's bytes
    height: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    min: Mapped[OptFloat]
    max: Mapped[OptFloat]
    mean: Mapped[OptFloat]
    abs_mean: Mapped[OptFloat]
    std: Mapped[OptFloat]
    # the map's identity (xaiq.worker.reuse) and whether this job read it from an earlier one
    map_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reused: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


METRIC_COLUMNS = (
    "feature_disagreement",
    "sign_disagreement",
    "euclidean",
    "euclidean_abs",
    "feature_agreement",
    "sign_agreement",
    "rank_agreement",
    "signed_rank_agreement",
    "rank_correlation",
    "pairwise_rank_agreement",
)


class Disagreement(Base):
    """One row per sample x method pair x superpixel configuration."""

    __tablename__ = "disagreements"
    __table_args__ = (
        UniqueConstraint(
            "job_id",
            "sample_index",
            "method_a",
            "method_b",
            "superpixels",
            "n_segments",
            "k_frac",
            name="uq_disagreement",
        ),
        Index("ix_disagreement_pair", "job_id", "method_a", "method_b"),
    )

    id: Mapped[IntPK]
    job_id: Mapped[JobFK]
    sample_index: Mapped[SampleIndex]
    method_a: Mapped[Name]
    method_b: Mapped[Name]
    superpixels: Mapped[str] = mapped_column(String(32))
    n_segments: Mapped[int] = mapped_column(Integer)
    k_frac: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)
    k: Mapped[int] = mapped_column(Integer)
    target_kind: Mapped[TargetKind]
    model_a: Mapped[OptModel]
    model_b: Mapped[OptModel]
    feature_disagreement: Mapped[OptFloat]
    sign_disagreement: Mapped[OptFloat]
    euclidean: Mapped[OptFloat]
    euclidean_abs: Mapped[OptFloat]
    feature_agreement: Mapped[OptFloat]
    sign_agreement: Mapped[OptFloat]
    rank_agreement: Mapped[OptFloat]
    signed_rank_agreement: Mapped[OptFloat]
    rank_correlation: Mapped[OptFloat]
    pairwise_rank_agreement: Mapped[OptFloat]


class Faithfulness(Base):
    """Deletion and insertion (the RISE paper's causal metrics) of one map.

    One row per sample x method x unit: ``unit`` is ``pixels`` (``n_segments`` 0) or a
    superpixel method with its ``n_segments``. The curves (``[2, n_steps + 1]``: deletion,
    insertion) are an artifact.
    """

    __tablename__ = "faithfulness"
    __table_args__ = (
        UniqueConstraint(
            "job_id", "sample_index", "method", "unit", "n_segments", name="uq_faithfulness"
        ),
        Index("ix_faithfulness_method", "job_id", "method"),
    )

    id: Mapped[IntPK]
    job_id: Mapped[JobFK]
    sample_index: Mapped[SampleIndex]
    method: Mapped[Name]
    model: Mapped[OptModel]
    target: Mapped[int] = mapped_column(Integer)
    target_kind: Mapped[TargetKind]
    unit: Mapped[str] = mapped_column(String(32))
    n_segments: Mapped[int] = mapped_column(Integer)
    order: Mapped[str] = mapped_column(String(8))
    substrate: Mapped[str] = mapped_column(String(16))
    step: Mapped[int] = mapped_column(Integer)
    n_steps: Mapped[int] = mapped_column(Integer)
    prob_full: Mapped[OptFloat]  # the explained class's probability on the original image
    deletion_auc: Mapped[OptFloat]
    insertion_auc: Mapped[OptFloat]
    artifact: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    checksum: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # the tie rule (random, index, reverse) and the insertion blur (reference, sampled);
    # NULL: rows written before they were recorded (index, sampled)
    ties: Mapped[str | None] = mapped_column(String(8), nullable=True)
    kernel: Mapped[str | None] = mapped_column(String(16), nullable=True)
    deletion_auc_lerf: Mapped[OptFloat]  # least relevant first
    insertion_auc_lerf: Mapped[OptFloat]
    deletion_auc_random: Mapped[OptFloat]  # the random-order baseline of the same sample
    insertion_auc_random: Mapped[OptFloat]
    tied_share: Mapped[OptFloat]  # share of units whose value ties another's
    sparseness: Mapped[OptFloat]  # Gini index of |map| (the pixel map, on every unit's row)
    complexity: Mapped[OptFloat]  # entropy of |map| / sum |map|


class SanityCheck(Base):
    """Model-randomisation sanity check (Adebayo et al. 2018) of one map at one layer.

    ``layer`` is the re-initialised layer (``mode`` cascading: it and every layer above it);
    ``layer_order`` counts from the logits (1 = the output layer). The metrics compare the
    trained model's map with the randomised model's map.
    """

    __tablename__ = "sanity_checks"
    __table_args__ = (
        UniqueConstraint(
            "job_id", "sample_index", "method", "mode", "layer", name="uq_sanity_check"
        ),
        Index("ix_sanity_method", "job_id", "method"),
    )

    id: Mapped[IntPK]
    job_id: Mapped[JobFK]
    sample_index: Mapped[SampleIndex]
    method: Mapped[Name]
    model: Mapped[OptModel]
    target: Mapped[int] = mapped_column(Integer)
    target_kind: Mapped[TargetKind]
    mode: Mapped[str] = mapped_column(String(16))
    layer: Mapped[str] = mapped_column(String(255))
    layer_order: Mapped[int] = mapped_column(Integer)
    spearman_abs: Mapped[OptFloat]
    spearman_signed: Mapped[OptFloat]
    ssim: Mapped[OptFloat]
    superpixels: Mapped[str] = mapped_column(String(32))
    n_segments: Mapped[int] = mapped_column(Integer)
    k_frac: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)
    k: Mapped[int] = mapped_column(Integer)
    feature_disagreement: Mapped[OptFloat]
    sign_disagreement: Mapped[OptFloat]
    euclidean: Mapped[OptFloat]
    euclidean_abs: Mapped[OptFloat]
    feature_agreement: Mapped[OptFloat]
    sign_agreement: Mapped[OptFloat]
    rank_agreement: Mapped[OptFloat]
    signed_rank_agreement: Mapped[OptFloat]
    rank_correlation: Mapped[OptFloat]
    pairwise_rank_agreement: Mapped[OptFloat]


class AttackResult(Base):
    __tablename__ = "attack_results"
    __table_args__ = (UniqueConstraint("job_id", "sample_index", name="uq_attack"),)

    id: Mapped[IntPK]
    job_id: Mapped[JobFK]
    sample_index: Mapped[SampleIndex]
    mode: Mapped[str] = mapped_column(String(16))
    target: Mapped[int] = mapped_column(Integer)
    success: Mapped[bool] = mapped_column(Boolean)
    strategy: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the one that won
    iterations: Mapped[int] = mapped_column(Integer)
    forward_passes: Mapped[int] = mapped_column(BigInteger)
    prob_before: Mapped[float] = mapped_column(Float)
    prob_after: Mapped[float] = mapped_column(Float)
    pred_before: Mapped[int] = mapped_column(Integer)
    pred_after: Mapped[int] = mapped_column(Integer)
    l0: Mapped[int] = mapped_column(Integer)
    l2: Mapped[float] = mapped_column(Float)
    linf: Mapped[float] = mapped_column(Float)
    artifact: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    checksum: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # the lab's diagnosis at the original image (NULL in rows written before 0005)
    grad_norm_logit: Mapped[OptFloat]
    grad_norm_logprob: Mapped[OptFloat]
    confidence: Mapped[OptFloat]
    # the final image's share of pixels outside the model's input domain and the largest
    # excursion beyond it (0 when clamped; NULL: not checked), the last strategy's tie count
    out_of_domain: Mapped[OptFloat]
    max_excursion: Mapped[OptFloat]
    tied_pixels: Mapped[int | None] = mapped_column(Integer, nullable=True)


class AttackStrategyResult(Base):
    """One strategy's own attack on one sample (every strategy tried; with ``compare`` every
    listed strategy), from the original image. ``first_success_iter`` is NULL on failure;
    the artifact is the strategy's final image (on failure its highest-scoring candidate)."""

    __tablename__ = "attack_strategy_results"
    __table_args__ = (
        UniqueConstraint("job_id", "sample_index", "strategy", name="uq_attack_strategy"),
        Index("ix_attack_strategy_strategy", "job_id", "strategy"),
    )

    id: Mapped[IntPK]
    job_id: Mapped[JobFK]
    sample_index: Mapped[SampleIndex]
    strategy: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer)  # order in the spec's strategy list
    success: Mapped[bool] = mapped_column(Boolean)
    first_success_iter: Mapped[int | None] = mapped_column(Integer, nullable=True)
    iterations: Mapped[int] = mapped_column(Integer)
    guide_passes: Mapped[int] = mapped_column(Integer)
    forward_passes: Mapped[int] = mapped_column(BigInteger)
    prob_after: Mapped[float] = mapped_column(Float)
    pred_after: Mapped[int] = mapped_column(Integer)
    l0: Mapped[int] = mapped_column(Integer)
    l2: Mapped[float] = mapped_column(Float)
    linf: Mapped[float] = mapped_column(Float)
    artifact: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    checksum: Mapped[str | None] = mapped_column(String(64), nullable=True)
    out_of_domain: Mapped[OptFloat]  # share of the final image's pixels outside the domain
    max_excursion: Mapped[OptFloat]  # largest distance of a value beyond it (0 when clamped)
    tied_pixels: Mapped[int | None] = mapped_column(Integer, nullable=True)  # chosen by ties


class SampleErrorRow(Base):
    """A sample that could not be processed: failure is data."""

    __tablename__ = "sample_errors"
    __table_args__ = (UniqueConstraint("job_id", "sample_index", name="uq_sample_error"),)

    id: Mapped[IntPK]
    job_id: Mapped[JobFK]
    sample_index: Mapped[SampleIndex]
    key: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    stage: Mapped[str] = mapped_column(String(32))  # load, predict, explain, compare, attack
    message: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=1)


class SamplePin(Base):
    """What a job runs on, pinned when it is planned: each sample's key and a sha256 of its
    content. A resume or a shard compares the dataset with it (``xaiq.db.pins``)."""

    __tablename__ = "sample_pins"
    __table_args__ = (UniqueConstraint("job_id", "sample_index", name="uq_sample_pin"),)

    id: Mapped[IntPK]
    job_id: Mapped[JobFK]
    sample_index: Mapped[SampleIndex]
    key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))


class WorkerRow(Base):
    """A live worker's heartbeat: queues, device, the shard it is on."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    queues: Mapped[str] = mapped_column(String(255))
    device: Mapped[str] = mapped_column(String(64))
    current_shard_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Heartbeat(Base):
    """Liveness of singleton components (the scheduler)."""

    __tablename__ = "heartbeats"

    component: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class StatsDigest(Base):
    """A finished job's statistics digest is built (see :mod:`xaiq.analysis.digest`): valid while
    ``finished_at`` equals the job's own (a job run again gets a new one)."""

    __tablename__ = "stats_digests"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    finished_at: Mapped[dt.datetime] = mapped_column(DateTime)
    built_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    rows: Mapped[int] = mapped_column(BigInteger)  # disagreement rows summarised
    seconds: Mapped[float] = mapped_column(Float)  # how long the build took


class DigestCell(Base):
    """The exact statistics of one metric over one cell of a finished job: its rows of one
    method pair, one superpixel configuration and one explained class (the finest grouping
    made of job-level keys). Columns as :data:`xaiq.analysis.summary.STAT_COLUMNS`."""

    __tablename__ = "stats_digest_cells"
    __table_args__ = (
        UniqueConstraint(
            "job_id",
            "method_a",
            "method_b",
            "superpixels",
            "n_segments",
            "k_frac",
            "target_kind",
            "metric",
            name="uq_digest_cell",
        ),
    )

    id: Mapped[IntPK]
    job_id: Mapped[int] = mapped_column(
        ForeignKey("stats_digests.job_id", ondelete="CASCADE"), index=True
    )
    method_a: Mapped[Name]
    method_b: Mapped[Name]
    superpixels: Mapped[str] = mapped_column(String(32))
    n_segments: Mapped[int] = mapped_column(Integer)
    k_frac: Mapped[float] = mapped_column(Float)
    target_kind: Mapped[TargetKind]
    metric: Mapped[str] = mapped_column(String(64))
    n: Mapped[int] = mapped_column(BigInteger)
    nulls: Mapped[int] = mapped_column(BigInteger)
    mean: Mapped[OptFloat]
    std: Mapped[OptFloat]
    min: Mapped[OptFloat]
    p25: Mapped[OptFloat]
    median: Mapped[OptFloat]
    p75: Mapped[OptFloat]
    max: Mapped[OptFloat]
    # NULLs of this metric on rows whose euclidean is NULL too (a zero map; the rest have a
    # map of constant |value|): the "why NULL" of the stats table. NULL: built before 0004
    zero_map_nulls: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


# Gallery sort orders (``xaiq serve``): every ordering the Samples gallery offers, stored once
# a job has finished, so that a sorted page reads one stored chunk (xaiq.analysis.sortkeys)


class SortKeyIndex(Base):
    """A finished job's gallery sort orders are built: valid while ``finished_at`` equals the
    job's own (as :class:`StatsDigest`)."""

    __tablename__ = "sort_key_index"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    finished_at: Mapped[dt.datetime] = mapped_column(DateTime)
    built_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    rows: Mapped[int] = mapped_column(BigInteger)  # sample values ordered, every group
    seconds: Mapped[float] = mapped_column(Float)


class SortGroup(Base):
    """One family of orderings of a job's samples: a method pair at one configuration
    (``kind`` pair), the mean over the pairs at one configuration (``mean``), one method's
    faithfulness (``faith``), the attack (``attack``), or the sample itself (``sample``)."""

    __tablename__ = "sort_groups"
    __table_args__ = (Index("ix_sort_groups_job", "job_id", "kind"),)

    id: Mapped[IntPK]
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(300))  # "A|B", a method, or ""
    superpixels: Mapped[str | None] = mapped_column(String(32), nullable=True)
    n_segments: Mapped[int | None] = mapped_column(Integer, nullable=True)
    k_frac: Mapped[float | None] = mapped_column(Float, nullable=True)


class SortOrder(Base):
    """One chunk of one ordering: the sample indices (little-endian int32) of positions
    ``chunk * CHUNK`` onwards of the group's samples that have a value of metric ``slot``,
    ascending by (value, sample index). ``total``: the ordering's length."""

    __tablename__ = "sort_orders"
    __table_args__ = (UniqueConstraint("group_id", "slot", "chunk", name="uq_sort_order"),)

    id: Mapped[IntPK]
    group_id: Mapped[int] = mapped_column(ForeignKey("sort_groups.id", ondelete="CASCADE"))
    slot: Mapped[int] = mapped_column(Integer)
    chunk: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    samples: Mapped[bytes] = mapped_column(LargeBinary)


class SortSamples(Base):
    """One chunk of a job's samples in index order, for the gallery's filters: sample index,
    label, prediction (int32; NULL as -2**31) and correctness (int8; -1 NULL)."""

    __tablename__ = "sort_samples"
    __table_args__ = (UniqueConstraint("job_id", "chunk", name="uq_sort_samples"),)

    id: Mapped[IntPK]
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    chunk: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    sample_index: Mapped[bytes] = mapped_column(LargeBinary)
    label: Mapped[bytes] = mapped_column(LargeBinary)
    pred: Mapped[bytes] = mapped_column(LargeBinary)
    correct: Mapped[bytes] = mapped_column(LargeBinary)
