"""decision latency column

Revision ID: ac34e8eedd63
Revises: 12331ef11ab2
Create Date: 2026-12-06 13:35:02.182732+00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "ac34e8eedd63"
down_revision: str | None = "12331ef11ab2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.add_column(sa.Column("latency_ms", sa.Float(), nullable=True))
    # The column repeats the hashed payload's top-level latency_ms (verification compares them):
    # filled for the records logged before it existed.
    decision = sa.table("decision", sa.column("payload", sa.Text), sa.column("latency_ms"))
    if op.get_bind().dialect.name == "postgresql":
        text = sa.cast(decision.c.payload, postgresql.JSONB).op("->>")("latency_ms")
        value: Any = sa.cast(text, sa.Float)
    else:
        value = sa.func.json_extract(decision.c.payload, "$.latency_ms")
    op.execute(
        decision.update()
        .where(decision.c.payload.is_not(None), decision.c.payload.like('%"latency_ms"%'))
        .values(latency_ms=value)
    )


def downgrade() -> None:
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.drop_column("latency_ms")
