"""serving and decision log

Revision ID: e086d11f9391
Revises: 2a4220264889
Create Date: 2026-11-28 13:56:08.195247+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import core.db

revision: str = "e086d11f9391"
down_revision: str | None = "2a4220264889"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.Column("signed_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("public_key", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoint")),
    )
    with op.batch_alter_table("audit_checkpoint", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_checkpoint_chain"), ["chain"], unique=False)

    op.create_table(
        "chain_head",
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_chain_head")),
    )
    op.create_table(
        "decision",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("decision_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("endpoint", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=True),
        sa.Column("route", sa.String(length=40), nullable=True),
        sa.Column("subject_id", sa.String(length=200), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("parent_decision_id", sa.String(length=36), nullable=True),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decision")),
        sa.UniqueConstraint("decision_id", name=op.f("uq_decision_decision_id")),
        sa.UniqueConstraint("seq", name=op.f("uq_decision_seq")),
    )
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.create_index("ix_decision_created_at", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_decision_endpoint_created_at", ["endpoint", "created_at"], unique=False
        )
        batch_op.create_index("ix_decision_model_version", ["model", "version"], unique=False)
        batch_op.create_index("ix_decision_parent", ["parent_decision_id"], unique=False)
        batch_op.create_index("ix_decision_subject_id", ["subject_id"], unique=False)

    op.create_table(
        "endpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoint")),
        sa.UniqueConstraint("name", name=op.f("uq_endpoint_name")),
    )
    op.create_table(
        "endpoint_config",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"], ["endpoint.id"], name=op.f("fk_endpoint_config_endpoint_id_endpoint")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoint_config")),
    )
    with op.batch_alter_table("endpoint_config", schema=None) as batch_op:
        batch_op.create_index(
            "ix_endpoint_config_endpoint_id_id", ["endpoint_id", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("endpoint_config", schema=None) as batch_op:
        batch_op.drop_index("ix_endpoint_config_endpoint_id_id")

    op.drop_table("endpoint_config")
    op.drop_table("endpoint")
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.drop_index("ix_decision_subject_id")
        batch_op.drop_index("ix_decision_parent")
        batch_op.drop_index("ix_decision_model_version")
        batch_op.drop_index("ix_decision_endpoint_created_at")
        batch_op.drop_index("ix_decision_created_at")

    op.drop_table("decision")
    op.drop_table("chain_head")
    with op.batch_alter_table("audit_checkpoint", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_checkpoint_chain"))

    op.drop_table("audit_checkpoint")
