"""appeal cases

Revision ID: 59d212a5ef5d
Revises: 77dabcaf985f
Create Date: 2026-12-06 11:08:20.750823+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import core.db

revision: str = "59d212a5ef5d"
down_revision: str | None = "77dabcaf985f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


OLD_ROLES = "role IN ('admin', 'data-scientist', 'compliance', 'appeals', 'predictor', 'outcomes')"
ROLES = (
    "role IN ('admin', 'data-scientist', 'compliance', 'appeals', 'predictor', 'outcomes', "
    "'reviewer')"
)


def upgrade() -> None:
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_constraint("role_known", type_="check")
        batch_op.create_check_constraint("role_known", ROLES)
    op.create_table(
        "appeal_case",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("decision_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(length=32), nullable=False),
        sa.Column("due_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column(
            "overrides",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "evidence",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("reviewer", sa.String(length=32), nullable=True),
        sa.Column("assigned_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("assigned_by", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("decided_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=32), nullable=True),
        sa.Column("human_label", sa.String(length=200), nullable=True),
        sa.Column(
            "review",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("closed_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appeal_case")),
        sa.UniqueConstraint("case_id", name=op.f("uq_appeal_case_case_id")),
    )
    with op.batch_alter_table("appeal_case", schema=None) as batch_op:
        batch_op.create_index("ix_appeal_case_decision_id", ["decision_id"], unique=False)
        batch_op.create_index("ix_appeal_case_model_version", ["model", "version"], unique=False)
        batch_op.create_index("ix_appeal_case_opened_by", ["opened_by"], unique=False)
        batch_op.create_index(
            "ux_appeal_case_one_open",
            ["decision_id"],
            unique=True,
            sqlite_where=sa.text("status != 'closed'"),
            postgresql_where=sa.text("status != 'closed'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("appeal_case", schema=None) as batch_op:
        batch_op.drop_index(
            "ux_appeal_case_one_open",
            sqlite_where=sa.text("status != 'closed'"),
            postgresql_where=sa.text("status != 'closed'"),
        )
        batch_op.drop_index("ix_appeal_case_opened_by")
        batch_op.drop_index("ix_appeal_case_model_version")
        batch_op.drop_index("ix_appeal_case_decision_id")

    op.drop_table("appeal_case")
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_constraint("role_known", type_="check")
        batch_op.create_check_constraint("role_known", OLD_ROLES)
