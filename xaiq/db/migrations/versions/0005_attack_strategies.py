"""per-strategy attack rows and the lab's diagnosis per attacked sample (issue 16)

Additive only: a new table keyed by job x sample x strategy (every strategy a sample was
attacked with, with the iteration at which it first reached the goal and its best image),
and three nullable columns on attack_results (rows written before read NULL).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_DIAGNOSIS = ("grad_norm_logit", "grad_norm_logprob", "confidence")


def upgrade() -> None:
    with op.batch_alter_table("attack_results", schema=None) as batch_op:
        for name in _DIAGNOSIS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))
    op.create_table(
        "attack_strategy_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("first_success_iter", sa.Integer(), nullable=True),
        sa.Column("iterations", sa.Integer(), nullable=False),
        sa.Column("guide_passes", sa.Integer(), nullable=False),
        sa.Column("forward_passes", sa.BigInteger(), nullable=False),
        sa.Column("prob_after", sa.Float(), nullable=False),
        sa.Column("pred_after", sa.Integer(), nullable=False),
        sa.Column("l0", sa.Integer(), nullable=False),
        sa.Column("l2", sa.Float(), nullable=False),
        sa.Column("linf", sa.Float(), nullable=False),
        sa.Column("artifact", sa.String(length=1024), nullable=True),
        sa.Column("checksum", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "sample_index", "strategy", name="uq_attack_strategy"),
    )
    with op.batch_alter_table("attack_strategy_results", schema=None) as batch_op:
        batch_op.create_index("ix_attack_strategy_strategy", ["job_id", "strategy"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_attack_strategy_results_job_id"), ["job_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("attack_strategy_results")
    with op.batch_alter_table("attack_results", schema=None) as batch_op:
        for name in reversed(_DIAGNOSIS):
            batch_op.drop_column(name)
