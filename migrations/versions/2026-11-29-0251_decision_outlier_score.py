"""decision outlier score

Revision ID: 17c690e96f0a
Revises: c1c5ff75ce10
Create Date: 2026-11-29 02:51:21.246442+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "17c690e96f0a"
down_revision: str | None = "c1c5ff75ce10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outlier_score", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("is_outlier", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.drop_column("is_outlier")
        batch_op.drop_column("outlier_score")
