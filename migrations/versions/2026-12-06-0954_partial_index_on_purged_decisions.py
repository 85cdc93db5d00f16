"""partial index on purged decisions

Revision ID: aba8866de58a
Revises: 033966019fd9
Create Date: 2026-12-06 09:54:38.215773+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "aba8866de58a"
down_revision: str | None = "033966019fd9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


WHERE = sa.text("payload IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_decision_purged_seq",
        "decision",
        ["seq"],
        sqlite_where=WHERE,
        postgresql_where=WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_decision_purged_seq", table_name="decision")
