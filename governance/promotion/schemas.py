"""What a promotion asks and what it shows."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import Field, model_validator

from core.responses import Body, Strict
from governance.compliance.schemas import ModelCard
from governance.experiments.schemas import Breach, GuardrailEntry, Guardrails, TestEntry
from lineage.spec import NAME_PATTERN

MAX_ROBUSTNESS_DECISIONS = 50


class RolloutIn(Strict):
    """An automated canary roll-out instead of switching all traffic at once: the candidate
    takes each share in turn while its guardrails hold, and the endpoint rolls back when one
    breaks. The last step, 1, makes it the live route."""

    steps: list[float] = Field(
        default_factory=lambda: [0.05, 0.25, 0.5, 1.0], min_length=2, max_length=8
    )
    min_decisions_per_step: int = Field(
        default=200,
        ge=30,
        le=10_000_000,
        description="The candidate's decisions a step needs before its guardrails can hold",
    )
    guardrails: Guardrails = Field(description="At least one must be declared")

    @model_validator(mode="after")
    def _steps(self) -> Self:
        if any(not 0 < w <= 1 for w in self.steps) or self.steps != sorted(set(self.steps)):
            raise ValueError("steps: increasing shares above 0 and at most 1")
        if self.steps[-1] != 1:
            raise ValueError("steps: the last must be 1 (the candidate takes all the traffic)")
        g = self.guardrails
        if not (g.attributes or g.max_ood_rate is not None or g.max_p99_latency_ms is not None):
            raise ValueError("guardrails: declare at least one, or there is nothing to hold")
        return self


class PromotionIn(Strict):
    endpoint: str = Field(pattern=NAME_PATTERN, description="The endpoint it would serve live")
    rationale: str = Field(min_length=10, max_length=4000)
    experiment_id: str | None = Field(
        default=None, max_length=64, description="The experiment whose result stands behind it"
    )
    rollout: RolloutIn | None = Field(
        default=None, description="Roll out in steps once approved (default: all at once)"
    )
    robustness_decisions: int = Field(
        default=10,
        ge=1,
        le=MAX_ROBUSTNESS_DECISIONS,
        description="How many of the endpoint's latest decisions the candidate's robustness is "
        "sampled on (each one an adversarial search: seconds of CPU)",
    )


class Rationale(Strict):
    rationale: str = Field(min_length=10, max_length=4000)


class WaiverIn(Strict):
    what: Literal["evidence", "approval"]
    reason: str = Field(min_length=10, max_length=4000)


class RollbackIn(Strict):
    reason: str = Field(min_length=10, max_length=4000)


class Waiver(Body):
    what: Literal["evidence", "approval"]
    reason: str
    by: str
    at: str


class Routing(Body):
    before: int | None = Field(description="The endpoint configuration (id) it replaced")
    applied: int | None


class Step(Body):
    seq: int
    event: str
    at: datetime
    by: str
    record_hash: str = Field(description="Its record in the governance chain")


class EvidenceVersion(Body):
    model: str
    version: int
    artifact_sha256: str
    fingerprint: str
    estimator: str
    training_run: int | None
    trained_by: str
    created_at: str


class EvidenceRebuild(Body):
    verdict: str | None = Field(description="Only identical closes this part")
    rebuild_id: int | None
    finished_at: str | None = None
    note: str | None = None


class EvidenceRobustness(Body):
    sampled: int = Field(description="The endpoint's latest decisions, decided by the candidate")
    fragile: int
    fragile_share: float | None
    fragile_share_ci95: list[float] | None
    seed: int | None = None
    fragile_below: float | None = None


class EvidenceDrift(Body):
    since: str
    n: int
    verdict: str
    verdict_reasons: list[str]


class EvidenceExperiment(Body):
    experiment_id: str
    arm: str | None
    decision: str
    reason: str
    tests: list[TestEntry]
    guardrails_breached: list[Breach]
    counted_to_seq: int


class Evidence(Body):
    """The bundle as hashed (``evidence_sha256`` is over its canonical JSON)."""

    generated_at: str
    endpoint: str
    version: EvidenceVersion
    rebuild: EvidenceRebuild
    robustness: EvidenceRobustness
    drift: EvidenceDrift
    experiment: EvidenceExperiment | None
    card: ModelCard
    gaps: list[str]


class RolloutStep(Body):
    at: str
    step: int
    weight: float
    action: Literal["started", "stepped_up", "completed", "rolled_back"]
    decisions: int = Field(description="The candidate's decisions in the step it left")
    guardrails: dict[str, GuardrailEntry] = Field(
        description="Each guardrail of the candidate then, with its figures"
    )
    reason: str


class Rollout(Body):
    steps: list[float]
    min_decisions_per_step: int
    guardrails: Guardrails
    experiment_id: str | None
    step: int
    weight: float
    step_started_seq: int
    history: list[RolloutStep]


class GatheringProgress(Body):
    stage: str = Field(description="queued, robustness, then the rest of the evidence, gathered")
    done: int = Field(description="Robustness decisions attacked so far")
    total: int = Field(description="Robustness decisions asked for (the endpoint may have fewer)")


class PromotionPublic(Body):
    promotion_id: str
    model: str
    version: int
    endpoint: str
    status: Literal[
        "gathering", "requested", "rolling_out", "rejected", "applied", "rolled_back", "failed"
    ] = Field(
        description="gathering: the evidence job runs (see progress); requested: the evidence "
        "is in and a validator may decide; failed: the evidence could not be gathered (error)"
    )
    rationale: str
    experiment_id: str | None
    requested_at: datetime
    requested_by: str
    evidence_sha256: str | None = Field(description="null until the evidence is gathered")
    evidence_gaps: list[str]
    evidence: Evidence | None
    progress: GatheringProgress | None
    error: str | None
    decided_at: datetime | None
    decided_by: str | None
    decision_rationale: str | None
    waivers: list[Waiver]
    applied_at: datetime | None
    routing: Routing
    rollout: Rollout | None
    history: list[Step]


class PromotionList(Body):
    data: list[PromotionPublic]
    count: int
    next_cursor: int | None


class RolledBack(Body):
    reason: str
    from_config: int
    to_config: int
    as_config: int
    promotion: str | None


class RolloutTick(Body):
    promotion: PromotionPublic
    action: Literal["waiting", "stepped_up", "completed", "rolled_back"]
    reason: str
