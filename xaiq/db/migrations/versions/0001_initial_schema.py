"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 17:20:40.513931
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "heartbeats",
        sa.Column("component", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("component"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "attribution",
                "disagreement",
                "attack",
                name="jobkind",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "running",
                "succeeded",
                "partial",
                "failed",
                "cancelled",
                name="jobstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("dataset", sa.String(length=1024), nullable=False),
        sa.Column("model", sa.String(length=1024), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("shard_size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "workers",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queues", sa.String(length=255), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("current_shard_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "attack_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Integer(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=True),
        sa.Column("iterations", sa.Integer(), nullable=False),
        sa.Column("forward_passes", sa.BigInteger(), nullable=False),
        sa.Column("prob_before", sa.Float(), nullable=False),
        sa.Column("prob_after", sa.Float(), nullable=False),
        sa.Column("pred_before", sa.Integer(), nullable=False),
        sa.Column("pred_after", sa.Integer(), nullable=False),
        sa.Column("l0", sa.Integer(), nullable=False),
        sa.Column("l2", sa.Float(), nullable=False),
        sa.Column("linf", sa.Float(), nullable=False),
        sa.Column("artifact", sa.String(length=1024), nullable=True),
        sa.Column("checksum", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "sample_index", name="uq_attack"),
    )
    with op.batch_alter_table("attack_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attack_results_job_id"), ["job_id"], unique=False)

    op.create_table(
        "attributions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=128), nullable=False),
        sa.Column("target", sa.Integer(), nullable=False),
        sa.Column("artifact", sa.String(length=1024), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("min", sa.Float(), nullable=True),
        sa.Column("max", sa.Float(), nullable=True),
        sa.Column("mean", sa.Float(), nullable=True),
        sa.Column("abs_mean", sa.Float(), nullable=True),
        sa.Column("std", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "sample_index", "method", name="uq_attribution"),
    )
    with op.batch_alter_table("attributions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attributions_job_id"), ["job_id"], unique=False)

    op.create_table(
        "disagreements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("method_a", sa.String(length=128), nullable=False),
        sa.Column("method_b", sa.String(length=128), nullable=False),
        sa.Column("superpixels", sa.String(length=32), nullable=False),
        sa.Column("n_segments", sa.Integer(), nullable=False),
        sa.Column("k_frac", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("feature_disagreement", sa.Float(), nullable=True),
        sa.Column("sign_disagreement", sa.Float(), nullable=True),
        sa.Column("euclidean", sa.Float(), nullable=True),
        sa.Column("euclidean_abs", sa.Float(), nullable=True),
        sa.Column("feature_agreement", sa.Float(), nullable=True),
        sa.Column("sign_agreement", sa.Float(), nullable=True),
        sa.Column("rank_agreement", sa.Float(), nullable=True),
        sa.Column("signed_rank_agreement", sa.Float(), nullable=True),
        sa.Column("rank_correlation", sa.Float(), nullable=True),
        sa.Column("pairwise_rank_agreement", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "job_id",
            "sample_index",
            "method_a",
            "method_b",
            "superpixels",
            "n_segments",
            "k_frac",
            name="uq_disagreement",
        ),
    )
    with op.batch_alter_table("disagreements", schema=None) as batch_op:
        batch_op.create_index(
            "ix_disagreement_pair", ["job_id", "method_a", "method_b"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_disagreements_job_id"), ["job_id"], unique=False)

    op.create_table(
        "sample_errors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=True),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "sample_index", name="uq_sample_error"),
    )
    with op.batch_alter_table("sample_errors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sample_errors_job_id"), ["job_id"], unique=False)

    op.create_table(
        "samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("label", sa.Integer(), nullable=True),
        sa.Column("pred", sa.Integer(), nullable=False),
        sa.Column("target", sa.Integer(), nullable=False),
        sa.Column("prob_pred", sa.Float(), nullable=False),
        sa.Column("prob_target", sa.Float(), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=True),
        sa.Column("probs", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "sample_index", name="uq_sample"),
    )
    with op.batch_alter_table("samples", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_samples_job_id"), ["job_id"], unique=False)

    op.create_table(
        "shards",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("stop", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "queued",
                "running",
                "done",
                "failed",
                "cancelled",
                name="shardstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=255), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("published_at", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "index", name="uq_shard_job_index"),
    )
    with op.batch_alter_table("shards", schema=None) as batch_op:
        batch_op.create_index("ix_shard_status", ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_shards_job_id"), ["job_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("shards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shards_job_id"))
        batch_op.drop_index("ix_shard_status")

    op.drop_table("shards")
    with op.batch_alter_table("samples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_samples_job_id"))

    op.drop_table("samples")
    with op.batch_alter_table("sample_errors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sample_errors_job_id"))

    op.drop_table("sample_errors")
    with op.batch_alter_table("disagreements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disagreements_job_id"))
        batch_op.drop_index("ix_disagreement_pair")

    op.drop_table("disagreements")
    with op.batch_alter_table("attributions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attributions_job_id"))

    op.drop_table("attributions")
    with op.batch_alter_table("attack_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attack_results_job_id"))

    op.drop_table("attack_results")
    op.drop_table("workers")
    op.drop_table("jobs")
    op.drop_table("heartbeats")
