"""stats digests: exact per-cell statistics of finished jobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 13:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stats_digests",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.Column("built_at", sa.DateTime(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_table(
        "stats_digest_cells",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("method_a", sa.String(length=128), nullable=False),
        sa.Column("method_b", sa.String(length=128), nullable=False),
        sa.Column("superpixels", sa.String(length=32), nullable=False),
        sa.Column("n_segments", sa.Integer(), nullable=False),
        sa.Column("k_frac", sa.Float(), nullable=False),
        sa.Column("target_kind", sa.String(length=8), nullable=True),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("nulls", sa.BigInteger(), nullable=False),
        sa.Column("mean", sa.Float(), nullable=True),
        sa.Column("std", sa.Float(), nullable=True),
        sa.Column("min", sa.Float(), nullable=True),
        sa.Column("p25", sa.Float(), nullable=True),
        sa.Column("median", sa.Float(), nullable=True),
        sa.Column("p75", sa.Float(), nullable=True),
        sa.Column("max", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["stats_digests.job_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
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
    with op.batch_alter_table("stats_digest_cells", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stats_digest_cells_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stats_digest_cells", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stats_digest_cells_job_id"))
    op.drop_table("stats_digest_cells")
    op.drop_table("stats_digests")
