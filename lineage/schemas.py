from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from lineage.documents import GateResult, LineageDocument, RunError, TrainingMetrics
from lineage.input_schema import InputSchema
from lineage.models import RunStatus, Stage
from lineage.spec import NAME_PATTERN


class DatasetCreate(BaseModel):
    name: str = Field(pattern=NAME_PATTERN, description="A name for this data, e.g. 'loans'")
    repo: str = Field(min_length=1, max_length=2000, description="Absolute local path or git URL")
    path: str = Field(min_length=1, max_length=1000, description="File path inside the repo")
    rev: str = Field(default="HEAD", min_length=1, max_length=200, description="Any git revision")


class DatasetPublic(BaseModel):
    id: int
    name: str
    version: int
    repo: str
    path: str
    rev: str
    commit: str
    md5: str
    sha256: str
    size_bytes: int
    format: str
    row_count: int
    columns: list[dict[str, str]]
    created_at: datetime
    created_by: str


class RunPublic(BaseModel):
    id: int
    status: RunStatus
    progress: float
    message: str
    model_name: str
    dataset_version_id: int
    model_version: int | None = None
    error: RunError | None
    created_at: datetime
    created_by: str
    started_at: datetime | None
    finished_at: datetime | None


class StageChange(BaseModel):
    stage: Stage = Field(description="staging, production or archived")
    reason: str = Field(min_length=1, max_length=2000)


class StageTransitionPublic(BaseModel):
    version: int
    from_stage: Stage
    to_stage: Stage
    reason: str
    actor: str
    at: datetime


class ModelVersionPublic(BaseModel):
    model: str
    version: int
    stage: Stage
    artifact_sha256: str
    fingerprint: str
    estimator_class: str
    source: str
    input_schema: InputSchema = Field(description="What predict accepts, as recorded")
    metrics: TrainingMetrics
    gate: GateResult
    dataset_version_id: int
    run_id: int | None
    created_at: datetime
    created_by: str


class ModelVersionSummary(BaseModel):
    version: int
    stage: Stage
    artifact_sha256: str
    fingerprint: str
    gate_passed: bool
    created_at: datetime


class ModelPublic(BaseModel):
    name: str
    description: str
    created_at: datetime
    created_by: str
    versions: list[ModelVersionSummary]


class LineagePublic(BaseModel):
    model: str
    version: int
    stage: Stage
    lineage: LineageDocument
    stage_history: list[StageTransitionPublic]
