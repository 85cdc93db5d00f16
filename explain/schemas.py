"""The bodies of the explanation routes, as ``explain.service`` builds them.

An explanation is the decision it explains (id, logged model, label and score), the method's own
result, then how it was computed (library versions, the parameters with the seed used, whether
it came from storage, when and in how long). Maps keyed by feature name are typed by their
values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import Field

from core.responses import Body, FeatureValue, LibraryVersions, Number, Scalar

Direction = Literal["increase", "decrease"]


class LoggedModel(Body):
    """The model version that made the decision, as its record names it."""

    name: str
    sha256: str = Field(description="sha256 of the model artifact that decided")
    version: int


class _Head(Body):
    decision_id: str
    model: LoggedModel
    label: Scalar = Field(description="The class the decision gave, as logged")
    score: float = Field(description="The logged score: the probability of the positive class")


P = TypeVar("P", bound=Body)


class _Computed(Body, Generic[P]):
    """How an explanation was computed: the tail of every explanation body."""

    versions: LibraryVersions = Field(description="Library versions the result was computed with")
    params: P = Field(description="The parameters, with the seed used")
    cached: bool = Field(description="Served from storage: computed by an earlier request")
    computed_at: datetime
    compute_ms: float


class Background(Body):
    source: str = Field(description="The training rows the explainer drew on")
    how: str


class ShapParams(Body):
    seed: int


class ShapResult(Body):
    """SHAP's own fields."""

    base_value: float
    values: dict[str, float] = Field(description="Feature name -> attribution")
    output: float = Field(description="The model's output in ``space``: base_value + the values")
    space: Literal["log_odds", "probability"]
    positive_class: Scalar
    additivity_error: float
    seed: int | None = Field(description="null for the exact tree explainer, which draws nothing")
    method: str
    background: Background


class ShapExplanation(_Computed[ShapParams], ShapResult, _Head):
    """SHAP attributions per original feature (one-hot columns summed back to their feature)."""


class NumericCondition(Body):
    feature: str
    above: float | None = Field(description="Holds for values above this; null: no lower edge")
    at_most: float | None = Field(description="Holds for values at most this; null: no upper edge")


class CategoryCondition(Body):
    feature: str
    equals: str = Field(description="The category, as text")


class MissingCondition(Body):
    feature: str
    missing: Literal[True]


Condition = NumericCondition | CategoryCondition | MissingCondition


class Bound(Body):
    method: str
    confidence: float
    sided: str


class TrainingRows(Body):
    matching: int
    total: int
    left_out_as_the_explained_row: int


class AlibiEstimate(Body):
    rule: str
    precision: float
    coverage: float


class AnchorBackground(Body):
    source: str


class AnchorParams(Body):
    seed: int
    threshold: float


class AnchorResult(Body):
    """The anchor's own fields."""

    rule: str
    conditions: list[Condition]
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
    training_rows: TrainingRows
    alibi_estimate: AlibiEstimate
    source: Literal["alibi", "alibi, refined", "searched from the applicant's bins"]
    refined: list[str]
    message: str | None = Field(description="Why no reliable rule was found; null when one was")
    seed: int
    method: str
    background: AnchorBackground


class AnchorExplanation(_Computed[AnchorParams], AnchorResult, _Head):
    """An anchor rule: conditions on the applicant's own values under which the model gives the
    same class, with its precision measured on the training rows."""


class Change(Body):
    """One feature's change. ``from_label`` and ``to_label`` are present for a feature whose
    categories have labels."""

    from_: FeatureValue = Field(alias="from")
    to: FeatureValue
    from_label: str | None = None
    to_label: str | None = None


class Plausibility(Body):
    nearest_target_class_distance: float | None
    distance_quantile: float | None
    method: str


class Counterfactual(Body):
    changes: dict[str, Change] = Field(description="Feature name -> its change")
    label: Scalar
    score: float
    distance: float
    confirmed: bool
    plausibility: Plausibility


class CounterfactualSearch(Body):
    random_edits: int
    flipping_edits: int
    distinct_minimal: int
    repaired_for_constraints: int
    discarded_for_constraints: int
    not_confirmed: int


class CategoryTargets(Body):
    allowed: list[Scalar] = Field(description="The categories it may change to")
    rule: str


class NotEnforced(Body):
    constraint: str
    reason: str


class LinearConstraints(Body):
    enforced: list[str]
    not_enforced: list[NotEnforced]


class CounterfactualConstraints(Body):
    changeable: list[str]
    immutable: list[str]
    protected_never_inputs: list[str]
    directions: dict[str, Direction]
    bounds: dict[str, list[Number | None]] = Field(
        description="Numeric feature -> [low, high]; null for an open side"
    )
    categorical_transitions: dict[str, CategoryTargets]
    linear: LinearConstraints
    kept_null: list[str]


class CounterfactualParams(Body):
    k: int
    seed: int


class CounterfactualResult(Body):
    """The counterfactual search's own fields."""

    from_label: Scalar
    target_label: Scalar
    k: int
    requested: int
    returned: int
    counterfactuals: list[Counterfactual]
    seed: int
    method: str
    searched: int
    candidates_searched: int
    search: CounterfactualSearch
    distance: str = Field(description="How distance is measured")
    constraints: CounterfactualConstraints
    shortfall_reason: str | None
    message: str | None


class CounterfactualExplanation(_Computed[CounterfactualParams], CounterfactualResult, _Head):
    """Up to k diverse changes that flip the decision, within the spec's constraints."""


class FragileBelow(Body):
    fragile_below: float
    meaning: str


class NumericRange(Body):
    from_: float = Field(alias="from")
    range: list[float] = Field(description="[low, high] searched")
    direction: Literal["increase", "decrease", "any"]


class Searched(Body):
    features: list[str]
    numeric: dict[str, NumericRange]
    categorical: dict[str, list[Scalar]]
    directions: dict[str, Direction]
    radius: float | None
    radius_meaning: str
    iterations: int
    max_iterations: int
    max_evaluations: int
    attack_ran: bool
    candidates: int
    numeric_candidates: int
    categorical_candidates: int
    broke_a_linear_constraint: int
    linear_constraints: LinearConstraints
    kept_missing: list[str]
    not_searched: str


class Move(Body):
    from_: FeatureValue = Field(alias="from")
    to: FeatureValue


class Scored(Body):
    label: Scalar
    score: float


class RobustnessParams(Body):
    fragile_below: float
    seed: int


class RobustnessResult(Body):
    """The robustness assessment's own fields."""

    seed: int
    threshold: FragileBelow
    distance_units: str
    changeable: list[str]
    searched: Searched
    method: str
    perturbation: dict[str, Move] | None
    distance: float | None
    found_by: str | None = None
    replay: Scored | None = None
    flips_on_replay: bool | None
    verdict: Literal["robust", "fragile"]
    message: str


class RobustnessReport(_Computed[RobustnessParams], RobustnessResult, _Head):
    """The smallest perturbation found that flips the decision, and the verdict. ``found_by``
    and ``replay`` are present when a flip was found."""


class Reason(Body):
    rank: int
    code: str
    feature: str
    text: str
    value: FeatureValue
    value_label: str
    contribution: float | None = Field(
        default=None, description="From SHAP: the attribution against the favourable outcome"
    )
    points_lost: float | None = Field(
        default=None, description="From a scorecard: the points below the feature's best bin"
    )


class ReasonsSource(Body):
    method: str
    seed: int | None = Field(description="The SHAP seed; None for a scorecard's points")
    versions: LibraryVersions


class ScorecardPoints(Body):
    """A scorecard decision's score and each feature's points (``lineage.scorecard``)."""

    score: float
    points: dict[str, float]


class AdverseActionReasons(Body):
    """Reason codes for an unfavourable decision, strongest first; none for a favourable one
    (which has no ``space``)."""

    decision_id: str
    model: LoggedModel
    score: float
    favourable: bool
    label: Scalar
    reasons: list[Reason]
    space: Literal["log_odds", "probability", "scorecard points"] | None = None
    scorecard: ScorecardPoints | None = None
    message: str
    source: ReasonsSource


class Replayed(Body):
    label: Scalar | None
    score: float | None


class Replay(Body):
    """The logged input scored again on the same model version, with any overrides."""

    decision_id: str
    model: LoggedModel
    overrides: dict[str, Move] = Field(description="Feature name -> the logged and given value")
    logged: Replayed
    replay: Scored
    identical: bool
    reproduces_logged_decision: bool | None = Field(
        description="With no overrides: whether the replay gave the logged label and score"
    )
    label_changed: bool
