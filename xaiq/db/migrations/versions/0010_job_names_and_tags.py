"""job names and tags (``submit --name``, ``--tag``)

Additive: a nullable, indexed ``jobs.name`` and a ``job_tags`` table (one row per job and
tag). Jobs submitted before it have no name and no tags.

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-03 14:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=128), nullable=True))
        batch_op.create_index("ix_jobs_name", ["name"], unique=False)
    op.create_table(
        "job_tags",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "tag", name="uq_job_tag"),
    )
    op.create_index("ix_job_tags_job_id", "job_tags", ["job_id"], unique=False)
    op.create_index("ix_job_tags_tag", "job_tags", ["tag"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_tags_tag", table_name="job_tags")
    op.drop_index("ix_job_tags_job_id", table_name="job_tags")
    op.drop_table("job_tags")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_name")
        batch_op.drop_column("name")
