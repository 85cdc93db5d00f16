"""governance chain and experiments

Revision ID: 12331ef11ab2
Revises: 5e4aa3183d51
Create Date: 2026-12-06 13:23:30.730126+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import core.db

revision: str = "12331ef11ab2"
down_revision: str | None = "5e4aa3183d51"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experiment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("endpoint", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("started_seq", sa.BigInteger(), nullable=False),
        sa.Column("routing_before", sa.Integer(), nullable=True),
        sa.Column("routing", sa.Integer(), nullable=False),
        sa.Column(
            "decided",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("decided_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(length=32), nullable=True),
        sa.Column("ended_seq", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("status IN ('running', 'ended')", name=op.f("ck_experiment_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment")),
        sa.UniqueConstraint("experiment_id", name=op.f("uq_experiment_experiment_id")),
    )
    with op.batch_alter_table("experiment", schema=None) as batch_op:
        batch_op.create_index(
            "ux_experiment_running_endpoint",
            ["endpoint"],
            unique=True,
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )

    op.create_table(
        "experiment_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_version")),
        sa.UniqueConstraint(
            "experiment_id", "version", name=op.f("uq_experiment_version_experiment_id_version")
        ),
    )
    op.create_table(
        "governance_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("subject_kind", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_event")),
        sa.UniqueConstraint("event_id", name=op.f("uq_governance_event_event_id")),
        sa.UniqueConstraint("seq", name=op.f("uq_governance_event_seq")),
    )
    with op.batch_alter_table("governance_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_governance_event_subject", ["subject_kind", "subject"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("governance_event", schema=None) as batch_op:
        batch_op.drop_index("ix_governance_event_subject")

    op.drop_table("governance_event")
    op.drop_table("experiment_version")
    with op.batch_alter_table("experiment", schema=None) as batch_op:
        batch_op.drop_index(
            "ux_experiment_running_endpoint",
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )

    op.drop_table("experiment")
