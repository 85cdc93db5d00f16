"""validator role and promotions

Revision ID: 69d1d7bb8bbb
Revises: ac34e8eedd63
Create Date: 2026-12-06 13:41:57.949246+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import core.db

revision: str = "69d1d7bb8bbb"
down_revision: str | None = "ac34e8eedd63"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ROLES = (
    "role IN ('admin', 'data-scientist', 'compliance', 'appeals', 'predictor', 'outcomes', "
    "'reviewer')"
)
ROLES = (
    "role IN ('admin', 'data-scientist', 'compliance', 'appeals', 'predictor', 'outcomes', "
    "'reviewer', 'validator')"
)


def upgrade() -> None:
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_constraint("role_known", type_="check")
        batch_op.create_check_constraint("role_known", ROLES)
    op.create_table(
        "promotion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("promotion_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("experiment_id", sa.String(length=36), nullable=True),
        sa.Column("requested_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("requested_by", sa.String(length=32), nullable=False),
        sa.Column(
            "evidence",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "evidence_gaps",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("decided_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=32), nullable=True),
        sa.Column("decision_rationale", sa.Text(), nullable=True),
        sa.Column(
            "waivers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("applied_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("routing_before", sa.Integer(), nullable=True),
        sa.Column("routing_applied", sa.Integer(), nullable=True),
        sa.Column(
            "rollout",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.CheckConstraint(
            "status IN ('requested', 'rolling_out', 'rejected', 'applied', 'rolled_back')",
            name=op.f("ck_promotion_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotion")),
        sa.UniqueConstraint("promotion_id", name=op.f("uq_promotion_promotion_id")),
    )
    with op.batch_alter_table("promotion", schema=None) as batch_op:
        batch_op.create_index(
            "ux_promotion_open",
            ["model", "version", "endpoint"],
            unique=True,
            sqlite_where=sa.text("status = 'requested'"),
            postgresql_where=sa.text("status = 'requested'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_constraint("role_known", type_="check")
        batch_op.create_check_constraint("role_known", OLD_ROLES)
    with op.batch_alter_table("promotion", schema=None) as batch_op:
        batch_op.drop_index(
            "ux_promotion_open",
            sqlite_where=sa.text("status = 'requested'"),
            postgresql_where=sa.text("status = 'requested'"),
        )

    op.drop_table("promotion")
