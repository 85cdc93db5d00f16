"""appeal letters stored

Revision ID: 5e4aa3183d51
Revises: 59d212a5ef5d
Create Date: 2026-12-06 13:13:08.163109+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5e4aa3183d51"
down_revision: str | None = "59d212a5ef5d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("appeal_case", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "letter",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("letter_html", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("letter_pdf", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("appeal_case", schema=None) as batch_op:
        batch_op.drop_column("letter_pdf")
        batch_op.drop_column("letter_html")
        batch_op.drop_column("letter")
