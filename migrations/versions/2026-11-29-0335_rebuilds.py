"""rebuilds

Revision ID: d019d7acf8e5
Revises: d0479e0cf042
Create Date: 2026-11-29 03:35:33.523497+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import core.db

revision: str = "d019d7acf8e5"
down_revision: str | None = "d0479e0cf042"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rebuild",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("verdict", sa.String(length=20), nullable=True),
        sa.Column(
            "report",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("executor", sa.String(length=20), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("started_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_version.id"],
            name=op.f("fk_rebuild_model_version_id_model_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rebuild")),
    )
    with op.batch_alter_table("rebuild", schema=None) as batch_op:
        batch_op.create_index(
            "ix_rebuild_model_version_id_id", ["model_version_id", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_rebuild_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rebuild", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rebuild_status"))
        batch_op.drop_index("ix_rebuild_model_version_id_id")

    op.drop_table("rebuild")
