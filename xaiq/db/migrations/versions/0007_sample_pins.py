"""sample pins: each job's sample keys and content fingerprints, taken when it is planned

Additive: a new table. Jobs planned before it have no pins; their resumes and shards are not
checked against the dataset (as before).

Revision ID: 0007
Revises: 0011
Create Date: 2026-12-03 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sample_pins",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "sample_index", name="uq_sample_pin"),
    )
    with op.batch_alter_table("sample_pins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sample_pins_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    op.drop_table("sample_pins")
