"""Stored explanations: each computed once per decision, method and parameters, then served."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.db import JSONType, UTCDateTime, utcnow


class Explanation(SQLModel, table=True):
    __tablename__ = "explanation"
    __table_args__ = (sa.UniqueConstraint("decision_id", "method", "params_key"),)

    id: int | None = Field(default=None, primary_key=True)
    decision_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False))
    method: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    params_key: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    model: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    artifact_sha256: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    seed: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    versions: dict[str, Any] = Field(sa_column=sa.Column(JSONType, nullable=False))
    result: dict[str, Any] = Field(sa_column=sa.Column(JSONType, nullable=False))
    compute_ms: float = Field(sa_column=sa.Column(sa.Float, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
    created_by: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
