"""gallery sort keys of finished jobs; each shard's stage counts in the store

Additive. ``sort_key_index``, ``sort_groups``, ``sort_keys`` and ``sort_counts`` hold every
ordering the Samples gallery of ``xaiq serve`` offers (xaiq.analysis.sortkeys), built when a
job finishes; jobs finished before this revision have none and the gallery computes their
pages from the result rows as before (no backfill: a large job's keys take minutes, which a
migration should not). ``shards.stage`` and ``shards.stage_done`` carry a running shard's
stage counts, so a display in another process (``xaiq status``, ``xaiq serve``) shows the
stages of remote workers; NULL on shards written before it.

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

SLOTS = 10


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
        "sort_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("label", sa.Integer(), nullable=True),
        sa.Column("pred", sa.Integer(), nullable=True),
        sa.Column("correct", sa.Boolean(), nullable=True),
        *(sa.Column(f"v{i}", sa.Float(), nullable=True) for i in range(SLOTS)),
        sa.ForeignKeyConstraint(["group_id"], ["sort_groups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("group_id", "sample_index", name="uq_sort_key"),
    )
    for i in range(SLOTS):
        op.create_index(f"ix_sort_keys_v{i}", "sort_keys", ["group_id", f"v{i}", "sample_index"])
    op.create_table(
        "sort_counts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.Integer(), nullable=True),
        sa.Column("pred", sa.Integer(), nullable=True),
        sa.Column("correct", sa.Boolean(), nullable=True),
        *(sa.Column(f"n{i}", sa.BigInteger(), nullable=False) for i in range(SLOTS)),
        sa.ForeignKeyConstraint(["group_id"], ["sort_groups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sort_counts_group", "sort_counts", ["group_id", "label", "pred"])


def downgrade() -> None:
    op.drop_index("ix_sort_counts_group", table_name="sort_counts")
    op.drop_table("sort_counts")
    for i in range(SLOTS):
        op.drop_index(f"ix_sort_keys_v{i}", table_name="sort_keys")
    op.drop_table("sort_keys")
    op.drop_index("ix_sort_groups_job", table_name="sort_groups")
    op.drop_table("sort_groups")
    op.drop_table("sort_key_index")
    with op.batch_alter_table("shards", schema=None) as batch_op:
        batch_op.drop_column("stage_done")
        batch_op.drop_column("stage")
