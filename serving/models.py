"""Serving tables: endpoints, their configuration history, and the decision log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.db import JSONType, UTCDateTime, utcnow


class Endpoint(SQLModel, table=True):
    __tablename__ = "endpoint"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False, unique=True))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
    created_by: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))


class EndpointConfig(SQLModel, table=True):
    """Append-only: every change of an endpoint's routing is a new row, with who and when."""

    __tablename__ = "endpoint_config"
    __table_args__ = (sa.Index("ix_endpoint_config_endpoint_id_id", "endpoint_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int = Field(sa_column=sa.Column(sa.ForeignKey("endpoint.id"), nullable=False))
    config: dict[str, Any] = Field(sa_column=sa.Column(JSONType, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
    created_by: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))


class DecisionRecord(SQLModel, table=True):
    """One logged decision, shadow decision or rejected attempt, in the tamper-evident chain.

    ``payload`` is the canonical JSON that was hashed; the other columns repeat parts of it for
    queries, and verification checks that they still agree with it.
    """

    __tablename__ = "decision"
    __table_args__ = (
        sa.Index("ix_decision_endpoint_created_at", "endpoint", "created_at"),
        sa.Index("ix_decision_model_version", "model", "version"),
        sa.Index("ix_decision_subject_id", "subject_id"),
        sa.Index("ix_decision_created_at", "created_at"),
        # Partial: only shadow decisions have a parent. Over all rows, the planner's statistics
        # (one distinct value, NULL) made SQLite scan the table to find a decision's shadows.
        sa.Index(
            "ix_decision_parent",
            "parent_decision_id",
            sqlite_where=sa.text("parent_decision_id IS NOT NULL"),
            postgresql_where=sa.text("parent_decision_id IS NOT NULL"),
        ),
        # Partial: only purged records (retention) have no payload. The fairness tallies read the
        # highest purged seq on every report, to notice a purge since they counted.
        sa.Index(
            "ix_decision_purged_seq",
            "seq",
            sqlite_where=sa.text("payload IS NULL"),
            postgresql_where=sa.text("payload IS NULL"),
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    )
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False, unique=True))
    decision_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False, unique=True))
    kind: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    endpoint: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    model: str | None = Field(default=None, sa_column=sa.Column(sa.String(100), nullable=True))
    version: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    artifact_sha256: str | None = Field(
        default=None, sa_column=sa.Column(sa.String(64), nullable=True)
    )
    route: str | None = Field(default=None, sa_column=sa.Column(sa.String(40), nullable=True))
    subject_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(200), nullable=True))
    label: str | None = Field(default=None, sa_column=sa.Column(sa.String(200), nullable=True))
    score: float | None = Field(default=None, sa_column=sa.Column(sa.Float, nullable=True))
    parent_decision_id: str | None = Field(
        default=None, sa_column=sa.Column(sa.String(36), nullable=True)
    )
    key_id: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    context: dict[str, Any] | None = Field(
        default=None,
        sa_column=sa.Column(JSONType, nullable=True),
        description="The logged context (protected attributes among it), for group queries.",
    )
    features: dict[str, Any] | None = Field(
        default=None,
        sa_column=sa.Column(JSONType, nullable=True),
        description="The logged model inputs, for drift queries.",
    )
    outlier_score: float | None = Field(
        default=None,
        sa_column=sa.Column(sa.Float, nullable=True),
        description="Mahalanobis distance of the input from the training data (lineage detector).",
    )
    is_outlier: bool | None = Field(default=None, sa_column=sa.Column(sa.Boolean, nullable=True))
    latency_ms: float | None = Field(
        default=None,
        sa_column=sa.Column(sa.Float, nullable=True),
        description="A live decision's time from request to decision (experiment guardrails).",
    )
    payload: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    content_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    prev_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    record_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))


class DecisionOutcome(SQLModel, table=True):
    """What actually happened after a decision (e.g. repaid). Append-only: a correction is a new
    row, and the latest row for a decision is its outcome."""

    __tablename__ = "decision_outcome"
    __table_args__ = (sa.Index("ix_decision_outcome_decision_id_id", "decision_id", "id"),)

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    )
    decision_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False))
    outcome: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    observed_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    recorded_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
    recorded_by: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
