"""lda searches

Revision ID: 4b7f957353c8
Revises: 69d1d7bb8bbb
Create Date: 2026-12-06 14:34:41.006689+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import core.db

revision: str = "4b7f957353c8"
down_revision: str | None = "69d1d7bb8bbb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lda_search",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("search_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("base_model", sa.String(length=100), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=False),
        sa.Column("candidate_model", sa.String(length=100), nullable=False),
        sa.Column(
            "request",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "candidates",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column(
            "report",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("executor", sa.String(length=20), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("finished_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "chosen",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed')", name=op.f("ck_lda_search_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lda_search")),
        sa.UniqueConstraint("search_id", name=op.f("uq_lda_search_search_id")),
    )


def downgrade() -> None:
    op.drop_table("lda_search")
