"""attacks: how far the final image leaves the input domain, and how many pixels ties chose

Additive: three nullable columns on ``attack_results`` and ``attack_strategy_results``.
Rows written before it read NULL (not checked): the statistics never count them as plain
successes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TABLES = ("attack_results", "attack_strategy_results")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("out_of_domain", sa.Float(), nullable=True))
            batch_op.add_column(sa.Column("max_excursion", sa.Float(), nullable=True))
            batch_op.add_column(sa.Column("tied_pixels", sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("tied_pixels")
            batch_op.drop_column("max_excursion")
            batch_op.drop_column("out_of_domain")
