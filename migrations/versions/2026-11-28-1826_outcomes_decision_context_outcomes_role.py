"""outcomes, decision context, outcomes role

Revision ID: af8227896f75
Revises: ccb47cd9601e
Create Date: 2026-11-28 18:26:48.728868+00:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import core.db

revision: str = "af8227896f75"
down_revision: str | None = "ccb47cd9601e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "decision_outcome",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("decision_id", sa.String(length=36), nullable=False),
        sa.Column("outcome", sa.String(length=200), nullable=False),
        sa.Column("observed_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decision_outcome")),
    )
    with op.batch_alter_table("decision_outcome", schema=None) as batch_op:
        batch_op.create_index(
            "ix_decision_outcome_decision_id_id", ["decision_id", "id"], unique=False
        )

    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "context",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )

    # Existing records get their context from the hashed payload, so verification (which checks
    # every column against the payload) keeps passing.
    decision = sa.table(
        "decision",
        sa.column("id", sa.BigInteger),
        sa.column("payload", sa.Text),
        sa.column("context", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
    )
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(decision.c.id, decision.c.payload)
            .where(decision.c.id > last, decision.c.payload.is_not(None))
            .order_by(decision.c.id)
            .limit(5000)
        ).all()
        if not rows:
            break
        for row in rows:
            context = json.loads(row.payload).get("context")
            if context is not None:
                bind.execute(
                    decision.update().where(decision.c.id == row.id).values(context=context)
                )
        last = rows[-1].id

    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_constraint("role_known", type_="check")
        batch_op.create_check_constraint(
            "role_known",
            "role IN ('admin', 'data-scientist', 'compliance', 'appeals', 'predictor', 'outcomes')",
        )


def downgrade() -> None:
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_constraint("role_known", type_="check")
        batch_op.create_check_constraint(
            "role_known",
            "role IN ('admin', 'data-scientist', 'compliance', 'appeals', 'predictor')",
        )
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.drop_column("context")

    with op.batch_alter_table("decision_outcome", schema=None) as batch_op:
        batch_op.drop_index("ix_decision_outcome_decision_id_id")

    op.drop_table("decision_outcome")
