"""gallery sort orders of finished jobs; each shard's stage counts in the store

Additive. ``sort_key_index``, ``sort_groups``, ``sort_orders`` and ``sort_samples`` hold every
ordering the Samples gallery of ``xaiq serve`` offers (xaiq.analysis.sortkeys), built when a
job finishes; jobs finished before this revision have none and the gallery computes their
pages from the result rows as before (no backfill here: a large job's orders take a while;
``xaiq.analysis.sortkeys.build_sort_keys`` builds them). ``shards.stage`` and
``shards.stage_done`` carry a running shard's stage counts, so a display in another process
(``xaiq status``, ``xaiq serve``) shows the stages of remote workers; NULL on shards written
before it.

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-03 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stage", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("stage_done", sa.JSON(), nullable=True))
    op.create_table(
        "sort_key_index",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.Column("built_at", sa.DateTime(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_table(
        "sort_groups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("superpixels", sa.String(length=32), nullable=True),
        sa.Column("n_segments", sa.Integer(), nullable=True),
        sa.Column("k_frac", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sort_groups_job", "sort_groups", ["job_id", "kind"])
    op.create_table(
        "sort_orders",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("samples", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["sort_groups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("group_id", "slot", "chunk", name="uq_sort_order"),
    )
    op.create_table(
        "sort_samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("sample_index", sa.LargeBinary(), nullable=False),
        sa.Column("label", sa.LargeBinary(), nullable=False),
        sa.Column("pred", sa.LargeBinary(), nullable=False),
        sa.Column("correct", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "chunk", name="uq_sort_samples"),
    )


def downgrade() -> None:
    op.drop_table("sort_samples")
    op.drop_table("sort_orders")
    op.drop_index("ix_sort_groups_job", table_name="sort_groups")
    op.drop_table("sort_groups")
    op.drop_table("sort_key_index")
    with op.batch_alter_table("shards", schema=None) as batch_op:
        batch_op.drop_column("stage_done")
        batch_op.drop_column("stage")
