"""Tamper-evidence tables: the head of each hash chain, and signed checkpoints of heads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.db import JSONType, UTCDateTime, utcnow


class ChainHead(SQLModel, table=True):
    """The last record of a chain. Appenders lock this row, which orders every append."""

    __tablename__ = "chain_head"

    chain: str = Field(sa_column=sa.Column(sa.String(32), primary_key=True))
    seq: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    record_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )


class AuditCheckpoint(SQLModel, table=True):
    __tablename__ = "audit_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    chain: str = Field(sa_column=sa.Column(sa.String(32), nullable=False, index=True))
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    record_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    signed_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    signature: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    public_key: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    created_by: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))


class AccessRecord(SQLModel, table=True):
    """One read of decision data (a record, an explanation, a replay...), in its own hash chain.

    Append-only like the decision log: ``payload`` is the canonical JSON that was hashed, and the
    other columns repeat parts of it for queries; verification checks they still agree.
    """

    __tablename__ = "access_log"
    __table_args__ = (
        sa.Index("ix_access_log_created_at", "created_at"),
        sa.Index("ix_access_log_key_id", "key_id"),
        sa.Index("ix_access_log_target", "target"),
    )

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    )
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False, unique=True))
    entry_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False, unique=True))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    key_id: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    role: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    action: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    target: str | None = Field(default=None, sa_column=sa.Column(sa.String(200), nullable=True))
    rows: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    payload: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    content_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    prev_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    record_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))


class Alert(SQLModel, table=True):
    """A pattern worth a compliance officer's look, e.g. a key probing a decision boundary.

    One alert covers one episode: while the pattern goes on, later scans extend it (last_seen_at
    and the counts) instead of opening another.
    """

    __tablename__ = "audit_alert"
    __table_args__ = (
        sa.Index("ix_audit_alert_key_episode", "kind", "key_id", "endpoint", "last_seen_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    alert_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False, unique=True))
    kind: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    key_id: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    endpoint: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    model: str | None = Field(default=None, sa_column=sa.Column(sa.String(100), nullable=True))
    version: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    first_seen_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    last_seen_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    requests: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    detail: dict[str, Any] = Field(sa_column=sa.Column(JSONType, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
