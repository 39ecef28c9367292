"""which class is explained, models per side, faithfulness and sanity-check tables (issue 15)

Additive only: nullable columns on attributions and disagreements (rows written before read
NULL: the job's model, the label-else-prediction target), and two new tables.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_METRICS = (
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


def _common() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=1024), nullable=True),
        sa.Column("target", sa.Integer(), nullable=False),
        sa.Column("target_kind", sa.String(length=8), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("attributions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("target_kind", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("model", sa.String(length=1024), nullable=True))
    with op.batch_alter_table("disagreements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("target_kind", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("model_a", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("model_b", sa.String(length=1024), nullable=True))

    op.create_table(
        "faithfulness",
        *_common(),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("n_segments", sa.Integer(), nullable=False),
        sa.Column("order", sa.String(length=8), nullable=False),
        sa.Column("substrate", sa.String(length=16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("n_steps", sa.Integer(), nullable=False),
        sa.Column("prob_full", sa.Float(), nullable=True),
        sa.Column("deletion_auc", sa.Float(), nullable=True),
        sa.Column("insertion_auc", sa.Float(), nullable=True),
        sa.Column("artifact", sa.String(length=1024), nullable=True),
        sa.Column("checksum", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "job_id", "sample_index", "method", "unit", "n_segments", name="uq_faithfulness"
        ),
    )
    with op.batch_alter_table("faithfulness", schema=None) as batch_op:
        batch_op.create_index("ix_faithfulness_method", ["job_id", "method"], unique=False)
        batch_op.create_index(batch_op.f("ix_faithfulness_job_id"), ["job_id"], unique=False)

    op.create_table(
        "sanity_checks",
        *_common(),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("layer", sa.String(length=255), nullable=False),
        sa.Column("layer_order", sa.Integer(), nullable=False),
        sa.Column("spearman_abs", sa.Float(), nullable=True),
        sa.Column("spearman_signed", sa.Float(), nullable=True),
        sa.Column("ssim", sa.Float(), nullable=True),
        sa.Column("superpixels", sa.String(length=32), nullable=False),
        sa.Column("n_segments", sa.Integer(), nullable=False),
        sa.Column("k_frac", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        *[sa.Column(m, sa.Float(), nullable=True) for m in _METRICS],
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "job_id", "sample_index", "method", "mode", "layer", name="uq_sanity_check"
        ),
    )
    with op.batch_alter_table("sanity_checks", schema=None) as batch_op:
        batch_op.create_index("ix_sanity_method", ["job_id", "method"], unique=False)
        batch_op.create_index(batch_op.f("ix_sanity_checks_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    op.drop_table("sanity_checks")
    op.drop_table("faithfulness")
    with op.batch_alter_table("disagreements", schema=None) as batch_op:
        batch_op.drop_column("model_b")
        batch_op.drop_column("model_a")
        batch_op.drop_column("target_kind")
    with op.batch_alter_table("attributions", schema=None) as batch_op:
        batch_op.drop_column("model")
        batch_op.drop_column("target_kind")
