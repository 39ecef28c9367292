"""stats digests: NULLs from zero maps per cell (the stats table's NULL reasons)

Additive: one nullable column; digests built before it read NULL there and their NULL
reasons come from the exact path until the job's digest is rebuilt.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stats_digest_cells", schema=None) as batch_op:
        batch_op.add_column(sa.Column("zero_map_nulls", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stats_digest_cells", schema=None) as batch_op:
        batch_op.drop_column("zero_map_nulls")
