"""API key table. Only a hash of each key is stored."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.db import UTCDateTime, utcnow


class Role(StrEnum):
    admin = "admin"
    data_scientist = "data-scientist"
    compliance = "compliance"
    appeals = "appeals"
    reviewer = "reviewer"
    validator = "validator"
    predictor = "predictor"
    outcomes = "outcomes"


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    key_id: str = Field(sa_column=sa.Column(sa.String(32), nullable=False, unique=True))
    name: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    role: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    key_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
    created_by: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    expires_at: datetime | None = Field(
        default=None, sa_column=sa.Column(UTCDateTime(), nullable=True)
    )
    revoked_at: datetime | None = Field(
        default=None, sa_column=sa.Column(UTCDateTime(), nullable=True)
    )
    revoked_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(64), nullable=True))

    __table_args__ = (
        sa.CheckConstraint(
            "role IN ('admin', 'data-scientist', 'compliance', 'appeals', 'predictor', 'outcomes', "
            "'reviewer', 'validator')",
            name="role_known",
        ),
    )


class ConsoleSession(SQLModel, table=True):
    """A person signed in to the web console with their API key. The cookie holds a random token;
    only its hash is stored. A session lasts while its key is active, until sign-out, until it
    has been idle ``GOV_CONSOLE_IDLE_TIMEOUT_S`` and at most ``GOV_CONSOLE_SESSION_MAX_S``."""

    __tablename__ = "console_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    key_id: str = Field(sa_column=sa.Column(sa.String(32), nullable=False, index=True))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
    last_seen_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    ended_at: datetime | None = Field(
        default=None, sa_column=sa.Column(UTCDateTime(), nullable=True)
    )
