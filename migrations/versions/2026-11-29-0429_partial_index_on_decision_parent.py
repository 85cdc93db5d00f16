"""partial index on decision parent

Revision ID: 553046261df6
Revises: d019d7acf8e5
Create Date: 2026-11-29 04:29:05.441907+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "553046261df6"
down_revision: str | None = "d019d7acf8e5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


WHERE = sa.text("parent_decision_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_decision_parent", table_name="decision")
    op.create_index(
        "ix_decision_parent",
        "decision",
        ["parent_decision_id"],
        sqlite_where=WHERE,
        postgresql_where=WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_decision_parent", table_name="decision")
    op.create_index("ix_decision_parent", "decision", ["parent_decision_id"])
