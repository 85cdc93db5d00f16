"""Promotions: a model version's way to production on an endpoint, with evidence and a second
pair of eyes. The row holds the current state; every step is a record in the ``governance``
chain, the evidence bundle's sha256 among them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.db import JSONType, UTCDateTime

OPEN = "status IN ('gathering', 'requested')"
STATUSES = (
    "status IN ('gathering', 'requested', 'rolling_out', 'rejected', 'applied', 'rolled_back', "
    "'failed')"
)


class Promotion(SQLModel, table=True):
    __tablename__ = "promotion"
    __table_args__ = (
        # One open request per version and endpoint.
        sa.Index(
            "ux_promotion_open",
            "model",
            "version",
            "endpoint",
            unique=True,
            sqlite_where=sa.text(OPEN),
            postgresql_where=sa.text(OPEN),
        ),
        sa.CheckConstraint(STATUSES, name="status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    promotion_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False, unique=True))
    model: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    endpoint: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    rationale: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    experiment_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    requested_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    requested_by: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    evidence: dict[str, Any] | None = Field(
        default=None,
        sa_column=sa.Column(JSONType),
        description="The bundle, once gathered (a job: see progress)",
    )
    evidence_sha256: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    progress: dict[str, Any] | None = Field(
        default=None,
        sa_column=sa.Column(JSONType),
        description="While the evidence is gathered: the stage, and the robustness decisions done",
    )
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    evidence_gaps: list[str] = Field(
        sa_column=sa.Column(JSONType, nullable=False),
        description="What the evidence lacks; a promotion with a gap needs an admin's waiver",
    )
    decided_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    decided_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    decision_rationale: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    waivers: list[dict[str, Any]] = Field(sa_column=sa.Column(JSONType, nullable=False))
    applied_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime()))
    routing_before: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    routing_applied: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    rollout: dict[str, Any] | None = Field(
        default=None,
        sa_column=sa.Column(JSONType),
        description="An automated canary roll-out: its plan, its experiment, the current step "
        "and every step taken with the figures that justified it",
    )
