"""casework: notices, templates and the case chain

Revision ID: 77dabcaf985f
Revises: aba8866de58a
Create Date: 2026-12-06 10:44:48.610629+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import core.db

revision: str = "77dabcaf985f"
down_revision: str | None = "aba8866de58a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "adverse_notice",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("notice_id", sa.String(length=36), nullable=False),
        sa.Column("decision_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("decision_made_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("generated_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("generated_by", sa.String(length=32), nullable=False),
        sa.Column("due_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "held_because",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("released_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=32), nullable=True),
        sa.Column("release_rationale", sa.Text(), nullable=True),
        sa.Column("sent_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_by", sa.String(length=32), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("template_name", sa.String(length=100), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("template_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "content",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "stability",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("html_sha256", sa.String(length=64), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=True),
        sa.Column(
            "compute_ms",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adverse_notice")),
        sa.UniqueConstraint("decision_id", name=op.f("uq_adverse_notice_decision_id")),
        sa.UniqueConstraint("notice_id", name=op.f("uq_adverse_notice_notice_id")),
    )
    with op.batch_alter_table("adverse_notice", schema=None) as batch_op:
        batch_op.create_index(
            "ix_adverse_notice_clock", ["sent_at", "decision_made_at"], unique=False
        )
        batch_op.create_index("ix_adverse_notice_model_version", ["model", "version"], unique=False)

    op.create_table(
        "case_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("decision_id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=36), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_event")),
        sa.UniqueConstraint("event_id", name=op.f("uq_case_event_event_id")),
        sa.UniqueConstraint("seq", name=op.f("uq_case_event_seq")),
    )
    with op.batch_alter_table("case_event", schema=None) as batch_op:
        batch_op.create_index("ix_case_event_decision_id", ["decision_id"], unique=False)
        batch_op.create_index("ix_case_event_subject", ["subject"], unique=False)

    op.create_table(
        "notice_template",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("first_used_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_template")),
        sa.UniqueConstraint("name", "sha256", name=op.f("uq_notice_template_name_sha256")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_notice_template_name_version")),
    )


def downgrade() -> None:
    op.drop_table("notice_template")
    with op.batch_alter_table("case_event", schema=None) as batch_op:
        batch_op.drop_index("ix_case_event_subject")
        batch_op.drop_index("ix_case_event_decision_id")

    op.drop_table("case_event")
    with op.batch_alter_table("adverse_notice", schema=None) as batch_op:
        batch_op.drop_index("ix_adverse_notice_model_version")
        batch_op.drop_index("ix_adverse_notice_clock")

    op.drop_table("adverse_notice")
