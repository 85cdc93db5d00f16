"""Lineage tables. Dataset versions, model versions and stage transitions are append-only."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.db import JSONType, UTCDateTime, utcnow


def _ts(nullable: bool = False) -> Any:
    return sa.Column(UTCDateTime(), nullable=nullable)


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    cancelling = "cancelling"  # asked to stop; its process is being killed
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Stage(StrEnum):
    none = "none"
    staging = "staging"
    production = "production"
    archived = "archived"


class DatasetVersion(SQLModel, table=True):
    __tablename__ = "dataset_version"
    __table_args__ = (
        sa.UniqueConstraint("name", "repo", "path", "commit_sha"),
        sa.UniqueConstraint("name", "version"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False, index=True))
    version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    repo: str = Field(sa_column=sa.Column(sa.String(2000), nullable=False))
    path: str = Field(sa_column=sa.Column(sa.String(1000), nullable=False))
    rev: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    commit_sha: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    md5: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    sha256: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    size_bytes: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    format: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    row_count: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    columns: list[dict[str, str]] = Field(sa_column=sa.Column(JSONType, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    created_by: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))


class RegisteredModel(SQLModel, table=True):
    __tablename__ = "registered_model"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False, unique=True))
    description: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    created_by: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))


class TrainingRun(SQLModel, table=True):
    """A training job. Its status row is job state and changes; what it produces does not."""

    __tablename__ = "training_run"

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(sa_column=sa.Column(sa.String(20), nullable=False, index=True))
    progress: float = Field(default=0.0, sa_column=sa.Column(sa.Float, nullable=False))
    message: str = Field(default="", sa_column=sa.Column(sa.String(500), nullable=False))
    model_name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    spec: dict[str, Any] = Field(sa_column=sa.Column(JSONType, nullable=False))
    dataset_version_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("dataset_version.id"), nullable=False)
    )
    error: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONType, nullable=True))
    worker: str | None = Field(default=None, sa_column=sa.Column(sa.String(200), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    created_by: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_version"
    __table_args__ = (sa.UniqueConstraint("model_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(sa_column=sa.Column(sa.ForeignKey("registered_model.id"), nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    artifact_sha256: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    fingerprint: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    estimator_class: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    input_schema: dict[str, Any] = Field(sa_column=sa.Column(JSONType, nullable=False))
    metrics: dict[str, Any] = Field(sa_column=sa.Column(JSONType, nullable=False))
    lineage: dict[str, Any] = Field(sa_column=sa.Column(JSONType, nullable=False))
    source: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    dataset_version_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("dataset_version.id"), nullable=False)
    )
    run_id: int | None = Field(
        default=None, sa_column=sa.Column(sa.ForeignKey("training_run.id"), nullable=True)
    )
    gate_passed: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    created_by: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))


class StageTransition(SQLModel, table=True):
    __tablename__ = "stage_transition"
    __table_args__ = (sa.Index("ix_stage_transition_version_at", "model_version_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    model_version_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("model_version.id"), nullable=False)
    )
    from_stage: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    to_stage: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    reason: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    actor: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


_ACTIVE = "status IN ('queued', 'running', 'cancelling')"
ACTIVE_VERSION_REBUILD = f"decision_id IS NULL AND {_ACTIVE}"
ACTIVE_DECISION_REBUILD = f"decision_id IS NOT NULL AND {_ACTIVE}"


class Rebuild(SQLModel, table=True):
    """A rebuild job: re-run a version's recorded training and compare. Job state and report."""

    __tablename__ = "rebuild"
    __table_args__ = (
        sa.Index("ix_rebuild_model_version_id_id", "model_version_id", "id"),
        # One active rebuild per version, and per decision: a second request gets the first.
        sa.Index(
            "uq_rebuild_active_version",
            "model_version_id",
            unique=True,
            sqlite_where=sa.text(ACTIVE_VERSION_REBUILD),
            postgresql_where=sa.text(ACTIVE_VERSION_REBUILD),
        ),
        sa.Index(
            "uq_rebuild_active_decision",
            "model_version_id",
            "decision_id",
            unique=True,
            sqlite_where=sa.text(ACTIVE_DECISION_REBUILD),
            postgresql_where=sa.text(ACTIVE_DECISION_REBUILD),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    model_name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    model_version_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("model_version.id"), nullable=False)
    )
    decision_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(36), nullable=True))
    status: str = Field(sa_column=sa.Column(sa.String(20), nullable=False, index=True))
    progress: float = Field(default=0.0, sa_column=sa.Column(sa.Float, nullable=False))
    message: str = Field(default="", sa_column=sa.Column(sa.String(500), nullable=False))
    verdict: str | None = Field(default=None, sa_column=sa.Column(sa.String(20), nullable=True))
    report: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(JSONType, nullable=True)
    )
    executor: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    worker: str | None = Field(default=None, sa_column=sa.Column(sa.String(200), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    created_by: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
