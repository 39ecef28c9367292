"""maps computed once: each attribution row keeps its map's identity and whether it reused it

Additive: two nullable columns and an index on the identity. Rows written before read NULL
(never looked up for reuse, counted as computed).

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-03 14:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attributions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("map_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("reused", sa.Boolean(), nullable=True))
        batch_op.create_index("ix_attributions_map_key", ["map_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("attributions", schema=None) as batch_op:
        batch_op.drop_index("ix_attributions_map_key")
        batch_op.drop_column("reused")
        batch_op.drop_column("map_key")
