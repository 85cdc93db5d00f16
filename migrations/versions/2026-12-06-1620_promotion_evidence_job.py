"""promotion evidence gathered as a job

Revision ID: 7c2e4a91d5b0
Revises: 4b7f957353c8
Create Date: 2026-12-06 16:20:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = "7c2e4a91d5b0"
down_revision: str | None = "4b7f957353c8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "status IN ('requested', 'rolling_out', 'rejected', 'applied', 'rolled_back')"
STATUSES = (
    "status IN ('gathering', 'requested', 'rolling_out', 'rejected', 'applied', 'rolled_back', "
    "'failed')"
)
OLD_OPEN = "status = 'requested'"
OPEN = "status IN ('gathering', 'requested')"


def _index(batch_op: object, where: str, create: bool) -> None:
    kwargs = {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)}
    if create:
        batch_op.create_index(  # type: ignore[attr-defined]
            "ux_promotion_open", ["model", "version", "endpoint"], unique=True, **kwargs
        )
    else:
        batch_op.drop_index("ux_promotion_open", **kwargs)  # type: ignore[attr-defined]


def upgrade() -> None:
    with op.batch_alter_table("promotion", schema=None) as batch_op:
        _index(batch_op, OLD_OPEN, create=False)
        batch_op.drop_constraint("status", type_="check")
        batch_op.create_check_constraint("status", STATUSES)
        batch_op.alter_column("evidence", existing_type=core.db.JSONType, nullable=True)
        batch_op.alter_column("evidence_sha256", existing_type=sa.String(64), nullable=True)
        batch_op.add_column(sa.Column("progress", core.db.JSONType, nullable=True))
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))
    with op.batch_alter_table("promotion", schema=None) as batch_op:
        _index(batch_op, OPEN, create=True)


def downgrade() -> None:
    op.execute("UPDATE promotion SET status = 'rejected' WHERE status IN ('gathering', 'failed')")
    op.execute("UPDATE promotion SET evidence = '{}' WHERE evidence IS NULL")
    op.execute("UPDATE promotion SET evidence_sha256 = '' WHERE evidence_sha256 IS NULL")
    with op.batch_alter_table("promotion", schema=None) as batch_op:
        _index(batch_op, OPEN, create=False)
        batch_op.drop_column("error")
        batch_op.drop_column("progress")
        batch_op.alter_column("evidence_sha256", existing_type=sa.String(64), nullable=False)
        batch_op.alter_column("evidence", existing_type=core.db.JSONType, nullable=False)
        batch_op.drop_constraint("status", type_="check")
        batch_op.create_check_constraint("status", OLD_STATUSES)
    with op.batch_alter_table("promotion", schema=None) as batch_op:
        _index(batch_op, OLD_OPEN, create=True)
