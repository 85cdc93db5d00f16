"""one active rebuild per version and decision

A second rebuild request for a version (or a decision) while one is queued, running or being
cancelled returns that one; two unique partial indexes make the rule hold under concurrent
requests, on SQLite and PostgreSQL. Rebuilds already duplicated are left as they are: only the
newest active one of each is kept active, the others are marked cancelled.

Revision ID: 7c1e5a9f2b40
Revises: 553046261df6
Create Date: 2026-12-05 00:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c1e5a9f2b40"
down_revision: str | None = "553046261df6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = "status IN ('queued', 'running', 'cancelling')"


def upgrade() -> None:
    # Older duplicates (allowed before this revision) would break the index.
    op.execute(
        sa.text(
            "UPDATE rebuild SET status = 'cancelled', message = 'cancelled: a newer rebuild "
            "of the same version and decision is active' "
            "WHERE status IN ('queued', 'running', 'cancelling') AND id NOT IN ("
            "SELECT max(id) FROM rebuild WHERE status IN ('queued', 'running', 'cancelling') "
            "GROUP BY model_version_id, coalesce(decision_id, ''))"
        )
    )
    for name, columns, where in (
        ("uq_rebuild_active_version", ["model_version_id"], f"decision_id IS NULL AND {ACTIVE}"),
        (
            "uq_rebuild_active_decision",
            ["model_version_id", "decision_id"],
            f"decision_id IS NOT NULL AND {ACTIVE}",
        ),
    ):
        op.create_index(
            name,
            "rebuild",
            columns,
            unique=True,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    op.drop_index("uq_rebuild_active_decision", table_name="rebuild")
    op.drop_index("uq_rebuild_active_version", table_name="rebuild")
