"""job owners (who runs an in-process job) and per-shard progress by sample

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 13:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # additive and nullable: code that does not know these columns keeps working. The job
    # status "interrupted" needs no DDL (statuses are a plain string column).
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("owner_seen_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("shards") as batch:
        batch.add_column(sa.Column("samples_done", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shards") as batch:
        batch.drop_column("samples_done")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("owner_seen_at")
        batch.drop_column("owner")
