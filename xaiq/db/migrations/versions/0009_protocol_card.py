"""protocol card per job; faithfulness: tie rule, kernel, LeRF and random-order AUCs, map
properties

Additive: nullable columns. Jobs planned before it have no card (NULL); faithfulness rows
written before it read NULL in the new columns (their tie rule was ``index`` and their kernel
``sampled``, the defaults of the time).

Revision ID: 0009
Revises: 0010
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0010"
branch_labels = None
depends_on = None

_FAITH_FLOATS = (
    "deletion_auc_lerf",
    "insertion_auc_lerf",
    "deletion_auc_random",
    "insertion_auc_random",
    "tied_share",
    "sparseness",
    "complexity",
)


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("protocol", sa.JSON(), nullable=True))
    with op.batch_alter_table("faithfulness", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ties", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("kernel", sa.String(length=16), nullable=True))
        for name in _FAITH_FLOATS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("faithfulness", schema=None) as batch_op:
        for name in reversed(_FAITH_FLOATS):
            batch_op.drop_column(name)
        batch_op.drop_column("kernel")
        batch_op.drop_column("ties")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("protocol")
