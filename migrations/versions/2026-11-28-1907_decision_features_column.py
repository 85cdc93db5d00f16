"""decision features column

Revision ID: c1c5ff75ce10
Revises: af8227896f75
Create Date: 2026-11-28 19:07:45.013283+00:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c1c5ff75ce10"
down_revision: str | None = "af8227896f75"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "features",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )

    # Existing records get their features from the hashed payload, so verification (which
    # checks every column against the payload) keeps passing.
    decision = sa.table(
        "decision",
        sa.column("id", sa.BigInteger),
        sa.column("payload", sa.Text),
        sa.column("features", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
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
            features = json.loads(row.payload).get("features")
            if features is not None:
                bind.execute(
                    decision.update().where(decision.c.id == row.id).values(features=features)
                )
        last = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.drop_column("features")
