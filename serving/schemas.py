from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator, with_config
from typing_extensions import TypedDict

from core.responses import Body, FeatureValue, IsoTime, JsonValue, Number, Scalar
from lineage.models import Stage
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

    def resolved(self) -> EndpointConfigDocument:
        """The configuration as stored and served: every route named."""
        routes = []
        for i, route in enumerate(self.routes):
            default = "live" if i == 0 else ("canary" if len(self.routes) == 2 else f"canary-{i}")
            routes.append(RouteConfig(**{**route.model_dump(), "name": route.name or default}))
        return EndpointConfigDocument(
            routes=routes,
            shadows=[ShadowConfig(**s.model_dump()) for s in self.shadows],
            sticky=self.sticky,
            public_context=list(self.public_context),
        )


class Target(Body):
    """A model version an endpoint sends traffic to."""

    model_config = ConfigDict(frozen=True)

    model: str
    version: int


class RouteConfig(Target):
    """A route as stored and served: its name resolved (``EndpointConfigIn.resolved``)."""

    weight: Number
    name: str


class ShadowConfig(Target):
    """A shadow: scored on the endpoint's traffic, logged, never answered."""


class EndpointConfigDocument(Body):
    """An endpoint's configuration as stored, and as the serving path reads it: validated once
    when loaded (``of``), never read as a dict. A key a configuration written before it existed
    lacks has a default, and is shown only when stored."""

    model_config = ConfigDict(frozen=True)

    routes: list[RouteConfig]
    shadows: list[ShadowConfig] = []
    sticky: bool = False
    public_context: list[str] = []

    @classmethod
    def of(cls, stored: Mapping[str, Any]) -> EndpointConfigDocument:
        """A stored configuration (the JSON column), typed."""
        return cls.model_validate(stored)

    @property
    def live(self) -> RouteConfig:
        """The first route: the one that takes the traffic no other route does."""
        return self.routes[0]

    def targets(self) -> list[tuple[str, int]]:
        """Every (model, version) the endpoint routes or shadows to, in that order."""
        targets: list[Target] = [*self.routes, *self.shadows]
        return [(t.model, t.version) for t in targets]

    def stored(self) -> dict[str, Any]:
        """The document for the JSON column."""
        return self.model_dump(mode="json")


class ConfigChange(BaseModel):
    at: datetime
    by: str
    old: EndpointConfigDocument | None
    new: EndpointConfigDocument


class EndpointPublic(BaseModel):
    name: str
    config: EndpointConfigDocument
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
    label: Scalar = Field(description="The class the score gives")
    score: float
    created_at: datetime


class DecisionsOut(BaseModel):
    decisions: list[DecisionOut]


# The lineage summary a decision record carries: ``lineage.documents.LineageSummary``'s shape,
# validated as closed dicts, because the dossier (``governance.compliance.dossier``) reads it
# with ``.get`` and serves it with the rest of its dict. Once the dossier takes the model, the
# record can hold ``LineageSummary`` and these go.
_closed = with_config(ConfigDict(extra="forbid"))


@_closed
class DecisionLineageDataset(TypedDict):
    id: int | None
    name: str | None
    version: int | None
    repo: str | None
    path: str | None
    commit: str | None
    md5: str | None
    sha256: str | None


@_closed
class DecisionLineageGate(TypedDict):
    metric: str
    threshold: Number
    value: Number | None
    rule: str
    passed: bool


@_closed
class DecisionLineageDetector(TypedDict):
    method: str | None
    quantile: Number | None
    threshold: Number | None
    validation_outlier_rate: Number | None


@_closed
class DecisionLineage(TypedDict):
    """The part of a version's lineage that travels with each decision
    (``lineage.registry.lineage_summary``)."""

    model_version_created_at: IsoTime
    source: str
    run_id: int | None
    artifact_sha256: str
    fingerprint: str
    estimator: str | None
    dataset: DecisionLineageDataset
    seeds: dict[str, int] | None
    gate: DecisionLineageGate | None
    code: dict[str, JsonValue] | None
    outlier_detector: DecisionLineageDetector
    trained_at: IsoTime | None
    stage: Stage


# To the type checker, the plain dict the dossier reads; to pydantic, the closed shape above.
if TYPE_CHECKING:
    RecordLineage = dict[str, Any]
else:
    RecordLineage = DecisionLineage


class RejectionReason(Body):
    """Why a request was refused (``serving.payload.Rejection.reason``)."""

    code: str
    message: str
    details: JsonValue = Field(description="The error's details, summarized as logged")


class DecisionRecordPublic(BaseModel):
    decision_id: str
    seq: int
    kind: str
    created_at: datetime
    endpoint: str
    model: ModelRef | None
    route: str | None
    subject_id: str | None
    features: dict[str, FeatureValue] | None
    context: dict[str, FeatureValue] | None
    label: Scalar | None
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
    reason: RejectionReason | None = None
    redacted: list[str] = Field(
        default_factory=list, description="context keys hidden from this role"
    )
    record_hash: str
    lineage: RecordLineage | None = None


# The Open Inference Protocol (KServe V2) bodies govern answers with (``serving.v2``).


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class MetadataTensor(BaseModel):
    name: str
    datatype: str = Field(description="FP64 for numbers; BYTES, or INT64 for integer codes")
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str = Field(description="the endpoint")
    versions: list[str] = Field(description="model:version of each route, the live one first")
    platform: str
    inputs: list[MetadataTensor] = Field(description="one tensor per feature of the live model")
    outputs: list[MetadataTensor]


class ModelReady(BaseModel):
    name: str
    ready: bool


class InferParameters(BaseModel):
    """Per row: the route taken, the model version (model:version) and its artifact's sha256."""

    routes: list[str]
    models: list[str]
    sha256: list[str]


class ResponseOutput(BaseModel):
    name: str = Field(description="label, score or decision_id")
    shape: list[int]
    datatype: str
    data: list[int | float | str]


class InferenceResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_name: str = Field(description="the endpoint")
    model_version: str = Field(description="model:version of the first row's decision")
    id: str = Field(description="the request's id if it sent one, else the first decision's id")
    parameters: InferParameters
    outputs: list[ResponseOutput]
