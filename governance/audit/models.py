"""Tamper-evidence tables: the head of each hash chain, and signed checkpoints of heads."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from governance.db import UTCDateTime, utcnow


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
