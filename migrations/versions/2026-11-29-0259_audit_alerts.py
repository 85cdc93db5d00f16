"""audit alerts

Revision ID: d0479e0cf042
Revises: 17c690e96f0a
Create Date: 2026-11-29 02:59:24.252029+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import core.db

revision: str = "d0479e0cf042"
down_revision: str | None = "17c690e96f0a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("endpoint", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("first_seen_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_alert")),
        sa.UniqueConstraint("alert_id", name=op.f("uq_audit_alert_alert_id")),
    )
    with op.batch_alter_table("audit_alert", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_alert_key_episode",
            ["kind", "key_id", "endpoint", "last_seen_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_alert", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_alert_key_episode")

    op.drop_table("audit_alert")
