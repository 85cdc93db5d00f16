"""The ``governance`` hash chain: every change to what decides, in the order it was made. An
experiment declared, changed, stopped or ended; a promotion requested, approved, rejected,
waived or applied, with the hash of its evidence; a rollback; a step of an automated roll-out."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.db import UTCDateTime

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


class GovernanceEvent(SQLModel, table=True):
    """One change, in the ``governance`` chain. Append-only; ``payload`` is the canonical JSON
    that was hashed, the other columns repeat parts of it for queries."""

    __tablename__ = "governance_event"
    __table_args__ = (sa.Index("ix_governance_event_subject", "subject_kind", "subject"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False, unique=True))
    event_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False, unique=True))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    event: str = Field(sa_column=sa.Column(sa.String(40), nullable=False))
    subject_kind: str = Field(
        sa_column=sa.Column(sa.String(20), nullable=False),
        description="experiment, promotion, endpoint or search",
    )
    subject: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    key_id: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    payload: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    content_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    prev_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    record_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
