"""The bodies of the compliance workbench: logged decisions, the decision dossier, the model
card and the model inventory, as ``governance.compliance`` builds them.

The dossier and the card are served as built (JSON, or HTML from the same document); their
models describe that document. Figures by protected group follow ``core.cells``: compliance and
admin see every cell, marked ``below_reporting_threshold``; other roles see the small cells of
a table withheld as one row of nulls (``suppressed``), and the comparisons that used them
withheld with them (``comparison_suppressed``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from core.responses import Body, FeatureValue, IsoTime, JsonValue, LibraryVersions, Number, Scalar
from explain.fairness.schemas import (
    AttributeAsked,
    Comparison,
    CountedTo,
    FairnessGroup,
    GroupOutcomes,
    HomogeneityTest,
    Interval,
    Verdict,
    VerdictRule,
)
from explain.schemas import (
    AnchorParams,
    Bound,
    Counterfactual,
    CounterfactualConstraints,
    FragileBelow,
    Move,
    Reason,
    ReasonsSource,
    RobustnessParams,
    Scored,
    Searched,
)
from lineage.documents import GateResult, LineageSummary, MissingValues, TrainingMetrics
from lineage.input_schema import FeatureEntry, ProtectedEntry
from lineage.models import Stage
from lineage.schemas import StageTransitionPublic
from lineage.scorecard import Scorecard

# Decisions -------------------------------------------------------------------------------------


class DecisionRow(BaseModel):
    decision_id: str
    seq: int
    kind: str
    created_at: datetime
    endpoint: str
    model: str | None
    version: int | None
    route: str | None
    subject_id: str | None
    label: Scalar | None = Field(description="The model's class, as the decision record has it")
    score: float | None
    outlier_score: float | None
    is_outlier: bool | None
    key_id: str
    parent_decision_id: str | None
    record_hash: str
    purged: bool
    outcome: str | None = Field(description="The latest recorded outcome, if any")
    outcome_observed_at: datetime | None
    features: dict[str, FeatureValue] | None
    context: dict[str, FeatureValue] | None


# Shared pieces ---------------------------------------------------------------------------------


class DecisionWords(Body):
    favourable: str
    unfavourable: str
    source: Literal["spec", "default"]


class LastRebuild(Body):
    id: int
    verdict: str | None = Field(description="identical, equivalent, diverged or failed")
    finished_at: IsoTime | None


class ChangeInWords(Body):
    feature: str
    from_: str = Field(alias="from")
    to: str


# The dossier -----------------------------------------------------------------------------------


class DossierModelRef(Body):
    name: str
    version: int
    sha256: str


class DossierDecision(Body):
    """The decision record as the reader's role may see it (its context redacted for roles
    other than compliance and admin)."""

    decision_id: str
    seq: int
    kind: str
    created_at: IsoTime
    endpoint: str
    model: DossierModelRef | None
    route: str | None
    subject_id: str | None
    features: dict[str, FeatureValue] | None
    context: dict[str, FeatureValue] | None
    label: Scalar | None
    score: float | None
    outlier_score: float | None
    is_outlier: bool | None
    latency_ms: float | None
    key_id: str
    parent_decision_id: str | None
    shadows: list[str]
    reason: None = Field(description="Always null: a rejected attempt has no dossier")
    redacted: list[str] = Field(description="Context keys hidden from this role")
    record_hash: str


class OutlierInWords(Body):
    score: float | None
    threshold: Number | None
    is_outlier: bool | None
    text: str


class FeatureInWords(Body):
    name: str
    description: str
    value: FeatureValue
    text: str
    also_protected: bool


class DecisionInWords(Body):
    decision: str | None = Field(description="The decision's word (approved, denied)")
    favourable: bool | None
    class_label: Scalar | None
    favourable_class: Scalar | None
    score: float | None
    threshold: float
    rule: str
    score_shown: str | None
    threshold_shown: str
    score_text: str
    text: str
    outlier: OutlierInWords
    features: list[FeatureInWords]


class RecordedOutcome(Body):
    outcome: str
    observed_at: IsoTime
    recorded_at: IsoTime
    recorded_by: str
    earlier_records: int = Field(description="Earlier rows for this decision (corrected)")
    favourable: bool | None
    in_words: str


class DossierReasons(Body):
    favourable: bool
    label: Scalar
    reasons: list[Reason]
    source: ReasonsSource


class DossierShap(Body):
    base_value: float
    values: dict[str, float]
    output: float
    space: Literal["log_odds", "probability"]
    method: str
    seed: int | None
    versions: LibraryVersions


class BestInWords(Body):
    decision: str
    score_text: str
    changes: list[ChangeInWords]


class DossierCounterfactual(Body):
    from_label: Scalar
    target_label: Scalar
    best: Counterfactual | None = Field(description="The closest counterfactual, if any")
    best_in_words: BestInWords | None
    requested: int
    returned: int
    shortfall_reason: str | None
    message: str | None
    constraints: CounterfactualConstraints | None
    seed: int


class DossierAnchor(Body):
    """The anchor rule computed before for this decision, as stored."""

    rule: str
    label: Scalar
    precision: float | None
    precision_lower_bound: float | None
    bound: Bound
    coverage: float | None
    coverage_rows: int
    min_support: int
    threshold: float
    meets_threshold: bool
    reliable: bool
    explained_row_in_training: bool
    message: str | None
    source: str
    seed: int
    method: str
    params: AnchorParams
    computed_at: IsoTime
    versions: LibraryVersions


class DossierRobustness(Body):
    """The robustness assessment computed before for this decision, as stored; ``replay`` and
    ``found_by`` are present when a flip was found."""

    verdict: Literal["robust", "fragile"]
    message: str
    label: Scalar
    distance: float | None
    distance_units: str
    perturbation: dict[str, Move] | None
    flips_on_replay: bool | None
    replay: Scored | None = None
    found_by: str | None = None
    threshold: FragileBelow
    changeable: list[str]
    searched: Searched
    seed: int
    method: str
    params: RobustnessParams
    computed_at: IsoTime
    versions: LibraryVersions
    perturbation_in_words: list[ChangeInWords]


class ScoredDecision(Body):
    label: Scalar | None
    score: float | None


class DossierReplay(Body):
    logged: ScoredDecision
    replay: Scored
    reproduces_logged_decision: bool | None
    logged_decision: str
    replayed_decision: str
    logged_as_a_decision: Literal[False]


class DossierFairnessGroup(Body):
    group: dict[str, str]
    n: int
    selection_rate: float | None
    selection_rate_ci95: Interval | None
    disparate_impact_ratio: float | None
    disparate_impact_ratio_ci95: Interval | None
    four_fifths_verdict: Verdict
    below_minimum_size: bool
    below_reporting_threshold: bool


class AttributeVerdict(Body):
    """The verdicts by one protected attribute on its own."""

    attribute: str
    n: int
    favourable_label: str
    min_group_size: int
    four_fifths_verdict: Verdict
    verdict_reasons: list[str]
    most_favoured_group: dict[str, str] | None
    disparate_impact_ratio_min: float | None
    disparate_impact_ratio_min_ci95: Interval | None
    equal_opportunity_verdict: Verdict
    equal_opportunity_verdict_reasons: list[str]
    groups: list[DossierFairnessGroup]


class AttributeNotComputed(Body):
    attribute: str
    not_computed: str = Field(description="Why the report could not be computed")


class DossierFairness(Body):
    """The live fairness verdicts of the decision's model version on its endpoint."""

    endpoint: str
    model: str | None
    version: int | None
    withheld: Literal[False]
    min_group_size: int
    reporting_threshold: int
    attributes: list[AttributeVerdict | AttributeNotComputed]
    note: str


class WithheldFairness(Body):
    """For roles other than compliance and admin: fairness verdicts name protected groups."""

    endpoint: str
    model: str | None
    version: int | None
    withheld: Literal[True]
    reason: str
    attributes: list[AttributeVerdict] = Field(description="Always empty")


class SignedCheckpoint(Body):
    seq: int
    signed_at: IsoTime


class ChainPlace(Body):
    """This record's own hashes, its links to both neighbours, and the checkpoint covering it."""

    chain: str
    seq: int
    record_hash: str
    content_matches_hash: bool
    record_hash_matches: bool
    linked_to_previous: bool
    linked_to_next: bool | None = Field(description="null for the chain's last record")
    verified: bool
    signed_checkpoint: SignedCheckpoint | None
    method: str


class Dossier(Body):
    """One document about one decision, for an appeal or an examiner."""

    decision: DossierDecision
    decision_words: DecisionWords
    in_words: DecisionInWords
    outcome: RecordedOutcome | None
    model: LineageSummary | None = Field(description="The model version and its lineage")
    rebuild: LastRebuild | None
    reasons: DossierReasons
    shap: DossierShap
    counterfactual: DossierCounterfactual
    anchor: DossierAnchor | None = Field(description="null unless computed before")
    robustness: DossierRobustness | None = Field(description="null unless computed before")
    replay: DossierReplay
    fairness: DossierFairness | WithheldFairness
    chain: ChainPlace
    redacted: list[str]


# The model card --------------------------------------------------------------------------------


class OwnerDetail(Body):
    recorded: str
    kind: Literal["api_key", "command_line", "unknown"]
    name: str | None
    role: str | None
    text: str


class CardData(Body):
    name: str | None
    version: int | None
    repo: str | None
    path: str | None
    commit: str | None
    md5: str | None
    sha256: str | None
    row_count: int | None


class CardFeature(FeatureEntry):
    """A feature as recorded in the input schema, with what the card adds."""

    also_protected: bool
    protected_justification: str | None
    missing_value_policy: str | None = Field(description="How a missing value is handled")


class TopProxy(Body):
    attribute: str
    feature: str
    auc: float | None


class ScoreProxy(Body):
    attribute: str
    auc: float | None


class CardProxies(Body):
    """The proxy report's sentences, with names and AUCs only."""

    threshold: float | None
    summary: list[str]
    top_proxies: list[TopProxy]
    score: list[ScoreProxy]
    not_assessable: list[str]
    seed: int | None


class DecisionRule(Body):
    threshold: float
    rule: str
    positive_class: Scalar | None
    favourable_class: Scalar | None
    decision_words: DecisionWords
    text: str


class Overfitting(Body):
    train_auc: float | None
    validation_auc: float | None
    gap: float | None
    threshold: float
    flagged: bool | None = Field(description="null when not assessed; text says why")
    rule: str
    text: str


class GroupMetrics(Body):
    """A group's figures on the validation set; marked for compliance and admin."""

    n: int
    positive_rate: Number | None
    accuracy: Number | None
    brier: Number | None
    roc_auc: Number | None
    selection_rate: Number | None
    true_positive_rate: Number | None
    false_positive_rate: Number | None
    below_reporting_threshold: bool | None = None


class WithheldMetrics(Body):
    """The one row standing for every withheld group of a table (key ``(suppressed)``)."""

    n: None
    positive_rate: None
    accuracy: None
    brier: None
    roc_auc: None
    selection_rate: None
    true_positive_rate: None
    false_positive_rate: None
    suppressed: Literal[True]
    reason: str
    fewer_than: int = Field(description="The reporting threshold the withheld groups are below")


class CardOutcomes(GroupOutcomes):
    """A shown group's outcome figures; their comparisons are null when withheld."""

    equal_opportunity_verdict: Verdict | None  # type: ignore[assignment]


class WithheldOutcomes(Body):
    n: None
    favourable_outcomes: None
    unfavourable_outcomes: None
    true_positives: None
    false_positives: None
    true_positive_rate: None
    true_positive_rate_ci95: None
    false_positive_rate: None
    true_positive_rate_ratio: None
    true_positive_rate_ratio_ci95: None
    equal_opportunity_verdict: None
    below_reporting_threshold: Literal[True]
    suppressed: Literal[True]
    reason: str
    fewer_than: int


class CardGroup(FairnessGroup):
    """A shown group; its comparisons are null when another group was withheld."""

    outcomes: CardOutcomes | WithheldOutcomes | None  # type: ignore[assignment]
    four_fifths_verdict: Verdict | None  # type: ignore[assignment]


class WithheldGroup(Body):
    """The one row standing for every group below the reporting threshold."""

    group: None
    n: None
    below_minimum_size: None
    too_small: None
    favourable: None
    selection_rate: None
    selection_rate_ci95: None
    outcomes: None
    disparate_impact_ratio: None
    disparate_impact_ratio_ci95: None
    test_vs_most_favoured: None
    four_fifths_verdict: None
    four_fifths_violation: None
    below_reporting_threshold: Literal[True]
    suppressed: Literal[True]
    reason: str
    fewer_than: int


class _LiveHead(Body):
    endpoint: str
    counted_to: CountedTo
    attributes: list[AttributeAsked]
    favourable_label: str
    min_group_size: int
    reporting_threshold: int
    n: int
    with_outcomes: int
    verdict_rule: VerdictRule
    seed: int
    resamples: int


class _LiveComparison(Comparison):
    groups: list[CardGroup | WithheldGroup]  # type: ignore[assignment]
    compared_groups: int | None  # type: ignore[assignment]
    too_small_groups: int | None  # type: ignore[assignment]
    four_fifths_verdict: Verdict | None  # type: ignore[assignment]
    verdict_reasons: list[str] | None  # type: ignore[assignment]
    equal_opportunity_verdict: Verdict | None  # type: ignore[assignment]
    equal_opportunity_verdict_reasons: list[str] | None  # type: ignore[assignment]
    selection_rate_test: HomogeneityTest | None


class _LiveTail(Body):
    models: list[str]
    comparison_suppressed: Literal[True] | None = Field(
        default=None, description="Present when a small group's cell was withheld"
    )
    attribute: str | None = Field(default=None, description="In live_fairness_by_attribute")


class LiveFairness(_LiveTail, _LiveComparison, _LiveHead):
    """The fairness report of this version's decisions on one endpoint (GET /fairness, whole
    history), as the reader's role may see it."""


class AttributeName(Body):
    name: str


class LiveFairnessNotComputed(Body):
    endpoint: str
    attributes: list[AttributeName]
    not_computed: str
    groups: list[CardGroup] = Field(description="Always empty")
    attribute: str | None = Field(default=None, description="In live_fairness_by_attribute")


class ModelCard(Body):
    """What a version is for, what it was trained on, how it performs, by group and live,
    whether it passed its gate, where it came from, and whether it rebuilds."""

    model: str
    version: int
    description: str | None
    intended_use: str | None
    owner: str = Field(description="The recorded key id (or cli) that registered the version")
    owner_detail: OwnerDetail
    stage: Stage
    created_at: IsoTime
    data: CardData
    features: list[CardFeature]
    protected: list[ProtectedEntry]
    proxies: CardProxies | None
    missing_values: dict[str, MissingValues] | None
    target: str | None
    threshold: Number | None
    decision_rule: DecisionRule
    metrics: TrainingMetrics
    overfitting: Overfitting
    reporting_threshold: int
    metrics_by_group: dict[str, dict[str, GroupMetrics | WithheldMetrics]] = Field(
        description="Protected attribute -> group -> its validation figures"
    )
    live_fairness: list[LiveFairness | LiveFairnessNotComputed] = Field(
        description="By every protected attribute together (their intersection), per endpoint"
    )
    live_fairness_by_attribute: list[LiveFairness | LiveFairnessNotComputed]
    scorecard: Scorecard | None = Field(
        default=None, description="A scorecard's points per bin (lineage.scorecard)"
    )
    gate: GateResult | None
    lineage: LineageSummary
    rebuild: LastRebuild | None


# The inventory ---------------------------------------------------------------------------------


class ServingInterval(Body):
    endpoint: str
    route: str = Field(description="live, a named route, or shadow")
    weight: Number | None
    from_: IsoTime = Field(alias="from")
    until: IsoTime | None


class LastFairnessReport(Body):
    at: IsoTime
    endpoint: str | None
    by: str
    decisions: int


class InventoryItem(Body):
    model: str
    version: int
    status: Literal["in_use", "in_development", "retired"]
    stage: Stage
    stage_history: list[StageTransitionPublic]
    owner: str
    source: str
    created_at: IsoTime
    serving: list[ServingInterval] = Field(description="Where it serves now (or at `at`)")
    served: list[ServingInterval]
    decisions: int
    gate_passed: bool
    last_rebuild: LastRebuild | None
    last_fairness_report: LastFairnessReport | None


class Inventory(Body):
    at: IsoTime | None
    status: Literal["in_use", "in_development", "retired"] | None
    count: int
    versions: list[InventoryItem]


# The EU AI Act's technical documentation (Annex IV) ---------------------------------------------


class DocSection(Body):
    key: str
    title: str
    article: str = Field(description="Where the Act asks for it")
    status: Literal["evidenced", "partly", "missing"]
    evidence: dict[str, JsonValue] = Field(description="What govern records, as recorded")
    records: list[str] = Field(description="The routes that show the records it comes from")
    missing: list[str] = Field(description="What is not evidenced, in words")


class TechnicalDocumentation(Body):
    model: str
    version: int
    generated_at: str
    regulation: str
    summary: dict[str, list[str]] = Field(description="Section keys by status")
    sections: list[DocSection]
