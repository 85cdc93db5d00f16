from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lineage.spec import MAX_PUBLIC_CONTEXT, NAME_PATTERN, ContextKey, check_public_context

ROUTE_NAME = r"^[a-z][a-z0-9-]{0,39}$"


class RouteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    weight: float = Field(default=1.0, gt=0, le=1_000_000)
    name: str | None = Field(default=None, pattern=ROUTE_NAME, description="defaults: live, canary")


class ShadowSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)


class EndpointConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    routes: list[RouteSpec] = Field(min_length=1, max_length=10)
    shadows: list[ShadowSpec] = Field(default_factory=list, max_length=5)
    sticky: bool = Field(default=False, description="assign routes by subject_id, stably")
    public_context: list[ContextKey] = Field(
        default_factory=list,
        max_length=MAX_PUBLIC_CONTEXT,
        description="Context keys every role reading this endpoint's decisions may see, besides "
        "those its model versions' specs declare; a protected attribute of a decision's model "
        "stays hidden even when listed here",
    )

    @model_validator(mode="after")
    def _named(self) -> Self:
        names = [r.name for r in self.routes if r.name]
        if len(names) != len(set(names)):
            raise ValueError("route names must be unique")
        return self

    @field_validator("public_context")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        # The models' protected attributes are filtered out when a decision is read.
        return check_public_context(value, [])

    def resolved(self) -> dict[str, Any]:
        routes = []
        for i, route in enumerate(self.routes):
            default = "live" if i == 0 else ("canary" if len(self.routes) == 2 else f"canary-{i}")
            routes.append({**route.model_dump(), "name": route.name or default})
        return {
            "routes": routes,
            "shadows": [s.model_dump() for s in self.shadows],
            "sticky": self.sticky,
            "public_context": list(self.public_context),
        }


class ConfigChange(BaseModel):
    at: datetime
    by: str
    old: dict[str, Any] | None
    new: dict[str, Any]


class EndpointPublic(BaseModel):
    name: str
    config: dict[str, Any]
    updated_at: datetime
    updated_by: str
    history: list[ConfigChange]


class Instance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject_id: str | None = Field(default=None, min_length=1, max_length=200)
    features: dict[str, Any]
    context: dict[str, Any] | None = None


class PredictRequest(BaseModel):
    """Either one instance (`features`, with optional `subject_id` and `context`), or `instances`."""

    model_config = ConfigDict(extra="forbid")
    subject_id: str | None = Field(default=None, min_length=1, max_length=200)
    features: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    instances: list[Instance] | None = Field(default=None, min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if (self.features is None) == (self.instances is None):
            raise ValueError("send either features (one decision) or instances (a batch)")
        if self.instances is not None and (self.subject_id or self.context):
            raise ValueError("with instances, put subject_id and context inside each instance")
        return self

    def as_instances(self) -> list[Instance]:
        if self.instances is not None:
            return self.instances
        assert self.features is not None
        return [Instance(subject_id=self.subject_id, features=self.features, context=self.context)]


class ModelRef(BaseModel):
    name: str
    version: int
    sha256: str


class DecisionOut(BaseModel):
    decision_id: str
    endpoint: str
    model: ModelRef
    route: str
    label: Any
    score: float
    created_at: datetime


class DecisionsOut(BaseModel):
    decisions: list[DecisionOut]


class DecisionRecordPublic(BaseModel):
    decision_id: str
    seq: int
    kind: str
    created_at: datetime
    endpoint: str
    model: ModelRef | None
    route: str | None
    subject_id: str | None
    features: dict[str, Any] | None
    context: dict[str, Any] | None
    label: Any
    score: float | None
    outlier_score: float | None = Field(
        default=None,
        description="Mahalanobis distance of the input from the model's training data",
    )
    is_outlier: bool | None = Field(
        default=None, description="outlier_score beyond the detector's recorded threshold"
    )
    latency_ms: float | None
    key_id: str
    parent_decision_id: str | None
    shadows: list[str] = Field(default_factory=list)
    reason: dict[str, Any] | None = None
    redacted: list[str] = Field(
        default_factory=list, description="context keys hidden from this role"
    )
    record_hash: str
    lineage: dict[str, Any] | None = None
