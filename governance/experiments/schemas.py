"""What an experiment declares, and what its report says."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import Field, model_validator

from core.responses import Body, Strict
from lineage.spec import NAME_PATTERN

METRICS = ("approval_rate", "default_rate", "auc", "expected_loss")
DIRECTIONS: dict[str, Literal["higher", "lower"]] = {
    "approval_rate": "higher",
    "default_rate": "lower",
    "auc": "higher",
    "expected_loss": "lower",
}
MAX_PER_ARM = 100_000_000


class Arm(Strict):
    model: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)


class Challenger(Arm):
    mode: Literal["canary", "shadow"] = Field(
        description="canary: takes a share of live traffic and answers it; shadow: scores every "
        "request the champion answers, is logged, never answers"
    )
    weight: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="A canary's share of the traffic (the champion keeps the rest); not for a "
        "shadow",
    )


class Costs(Strict):
    """The cost of each wrong decision, in any unit, for ``expected_loss``."""

    approved_and_defaulted: float = Field(gt=0, le=1e12)
    denied_and_would_repay: float = Field(ge=0, le=1e12)


class Metric(Strict):
    kind: Literal["approval_rate", "default_rate", "auc", "expected_loss"]
    mde: float = Field(
        gt=0,
        le=1e12,
        description="The minimum detectable effect: the smallest difference worth finding, in the "
        "metric's unit (0.02 is two points of approval rate)",
    )
    direction: Literal["higher", "lower"] | None = Field(
        default=None,
        description="Which way is better; default: higher approval rate and AUC, lower default "
        "rate and expected loss",
    )
    costs: Costs | None = Field(default=None, description="Required for expected_loss")

    @model_validator(mode="after")
    def _costs(self) -> Self:
        if self.kind == "expected_loss" and self.costs is None:
            raise ValueError("expected_loss needs costs")
        if self.kind != "expected_loss" and self.costs is not None:
            raise ValueError("costs are only for expected_loss")
        if self.kind in ("approval_rate", "default_rate", "auc") and self.mde >= 1:
            raise ValueError(f"the mde of {self.kind} is a difference of proportions: below 1")
        return self

    @property
    def better(self) -> str:
        return self.direction or DIRECTIONS[self.kind]


class Guardrails(Strict):
    attributes: list[str] = Field(
        default_factory=list,
        max_length=3,
        description="Protected attributes: in each arm, the approval rate per group and the "
        "four-fifths rule (breached only when a ratio below 0.8 is significant)",
    )
    max_ood_rate: float | None = Field(
        default=None, gt=0, lt=1, description="The highest share of out-of-distribution inputs"
    )
    max_p99_latency_ms: float | None = Field(default=None, gt=0, le=600_000)


class Stopping(Strict):
    kind: Literal["msprt", "fixed_horizon"] = Field(
        default="msprt",
        description="msprt: always valid, the report may be read at any time; fixed_horizon: "
        "one test when each arm has the planned sample",
    )
    alpha: float = Field(default=0.05, gt=0, le=0.2)
    power: float = Field(default=0.8, ge=0.5, lt=1, description="For the planned sample")
    baseline: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="The metric's expected value, for the planned sample of a proportion; "
        "default: the champion's approval rate before the experiment (0.5 without one)",
    )
    max_per_arm: int | None = Field(
        default=None,
        ge=30,
        le=MAX_PER_ARM,
        description="The sequential test's last look (default: twice the planned sample) or the "
        "fixed horizon (default: the planned sample)",
    )


class ExperimentIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    endpoint: str = Field(pattern=NAME_PATTERN)
    champion: Arm
    challengers: list[Challenger] = Field(min_length=1, max_length=3)
    metric: Metric
    guardrails: Guardrails = Field(default_factory=Guardrails)
    stopping: Stopping = Field(default_factory=Stopping)

    @model_validator(mode="after")
    def _arms(self) -> Self:
        share = 0.0
        seen = {(self.champion.model, self.champion.version)}
        for i, c in enumerate(self.challengers):
            if (c.model, c.version) in seen:
                raise ValueError(f"challengers.{i}: {c.model} v{c.version} is already an arm")
            seen.add((c.model, c.version))
            if c.mode == "canary" and c.weight is None:
                raise ValueError(f"challengers.{i}: a canary needs its weight (a share below 1)")
            if c.mode == "shadow" and c.weight is not None:
                raise ValueError(f"challengers.{i}: a shadow takes no traffic: no weight")
            share += c.weight or 0.0
        if share >= 1:
            raise ValueError(
                "the canaries' weights add up to 1 or more: the champion needs a share"
            )
        return self


class ExperimentChange(Strict):
    """What may change while an experiment runs: its guardrails and its name. Its arms, metric
    and stopping rule are fixed (changing them would void the test)."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    guardrails: Guardrails | None = None


class EndIn(Strict):
    reason: str = Field(min_length=10, max_length=2000)
    restore_routing: bool = Field(
        default=True,
        description="Return the endpoint to the configuration it had before the experiment",
    )


class Plan(Body):
    baseline: float | None = Field(description="The proportion the planned sample assumes")
    planned_per_arm: int
    last_look_per_arm: int


class StoredConfig(ExperimentIn):
    """The configuration as declared, with the plan derived from it."""

    plan: Plan
    favourable_label: str


class MetricEntry(Body):
    value: float | None
    ci: list[float] | None = Field(description="At the experiment's alpha")
    n: int = Field(description="Decisions the metric is from")
    standard_error: float | None


class GroupRate(Body):
    group: str
    n: int
    approval_rate: float | None
    approval_rate_ci95: list[float] | None
    below_minimum_size: bool


class GuardrailEntry(Body):
    state: Literal["holds", "breached", "not_assessable", "not_declared"]
    disparate_impact_ratio_min: float | None = None
    disparate_impact_ratio_min_ci95: list[float] | None = None
    rule: str | None = None
    reasons: list[str] | None = None
    groups: list[GroupRate] | None = Field(default=None, description="Compliance only")
    rate: float | None = Field(default=None, description="The out-of-distribution share")
    value: float | None = Field(default=None, description="The 99th percentile latency, ms")
    ci95: list[float] | None = None
    limit: float | None = None
    reason: str | None = None


class ArmReport(Body):
    arm: str
    model: str
    version: int
    mode: Literal["champion", "canary", "shadow"]
    decisions: int
    metric: MetricEntry
    guardrails: dict[str, GuardrailEntry]


class TestEntry(Body):
    arm: str
    paired: bool = Field(description="A shadow: the same applicants, McNemar's variance")
    alpha: float = Field(description="The experiment's alpha over the challengers (Bonferroni)")
    difference: float | None
    interval: list[float] | None = Field(
        description="Of the difference: the confidence sequence (msprt) or interval"
    )
    statistic: float | None = Field(description="z (fixed horizon) or the mixture ratio (msprt)")
    p_value: float | None = Field(description="Always valid with msprt")
    decision: Literal["continue", "challenger_better", "champion_better", "no_difference"]
    reason: str


class SampleRatio(Body):
    statistic: float | None
    p_value: float | None
    mismatch: bool | None
    expected_share: list[float] | None
    observed_share: list[float] | None = None


class Breach(Body):
    arm: str
    guardrail: str
    value: float | None
    limit: float


class GroupDisagreement(Body):
    attribute: str
    group: str
    paired_decisions: int
    disagreements: int
    disagreement_rate: float | None


class Disagreement(Body):
    decision_id: str = Field(description="The champion's (answered) decision")
    shadow_decision_id: str
    champion_label: str
    shadow_label: str
    group: dict[str, str]


class ShadowEntry(Body):
    arm: str
    paired_decisions: int
    disagreements: int
    disagreement_rate: float | None
    favourable_only_here: int
    favourable_only_by_champion: int
    by_group: list[GroupDisagreement] | None = Field(description="Compliance only")
    examples: list[Disagreement] | None = Field(
        description="Compliance only: the latest disagreements, at most three per group"
    )


class ExperimentReport(Body):
    experiment_id: str
    name: str
    endpoint: str
    status: Literal["running", "ended"]
    version: int
    config: StoredConfig
    created_at: datetime
    created_by: str
    ended_at: datetime | None
    decision: Literal["continue", "challenger_better", "champion_better", "no_difference"]
    decided_at: datetime | None
    reason: str
    planned_per_arm: int
    last_look_per_arm: int
    arms: list[ArmReport]
    tests: list[TestEntry]
    sample_ratio: SampleRatio
    guardrails_breached: list[Breach]
    shadows: list[ShadowEntry]
    counted_to_seq: int = Field(description="Records with a seq up to this one are counted")
    compute_ms: float


class ExperimentSummary(Body):
    experiment_id: str
    name: str
    endpoint: str
    status: Literal["running", "ended"]
    version: int
    metric: str
    stopping: str
    decision: str
    created_at: datetime
    created_by: str
    decided_at: datetime | None
    ended_at: datetime | None


class ExperimentList(Body):
    data: list[ExperimentSummary]
    count: int
    next_cursor: int | None


class VersionEntry(Body):
    version: int
    config: StoredConfig
    created_at: datetime
    created_by: str


class ChangeEntry(Body):
    seq: int
    event: str
    at: datetime
    by: str
    record_hash: str


class ExperimentHistory(Body):
    versions: list[VersionEntry]
    changes: list[ChangeEntry]
