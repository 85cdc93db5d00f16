"""A search for a less discriminatory alternative: its space, its candidates (each a training run
with full lineage and, once trained, a registered version), its report, and the choice made."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.db import JSONType, UTCDateTime


class LdaSearch(SQLModel, table=True):
    __tablename__ = "lda_search"
    __table_args__ = (
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    search_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False, unique=True))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    base_model: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    base_version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    candidate_model: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    request: dict[str, Any] = Field(sa_column=sa.Column(JSONType, nullable=False))
    candidates: list[dict[str, Any]] = Field(
        sa_column=sa.Column(JSONType, nullable=False),
        description="Each candidate: its parameters, the features it drops, its run, its "
        "version and its figures once trained",
    )
    done: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    report: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONType))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    executor: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    created_by: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    chosen: dict[str, Any] | None = Field(
        default=None,
        sa_column=sa.Column(JSONType),
        description="Which candidate was chosen and why, by whom, when",
    )
