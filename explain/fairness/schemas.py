"""The body of GET /fairness, as ``explain.fairness.service.report`` builds it.

Every group is in the comparison however small (``below_minimum_size``), each marked whether it
is below the reporting threshold (``below_reporting_threshold``); the verdicts follow
``verdict_rule``. A group is named by its value of each attribute asked for (numbers binned, as
``"[18, 25)"``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from core.responses import Body, Number

Verdict = Literal["holds", "violated", "not_assessable"]
# Attribute -> the group's value (text; a bin of a number reads "[18, 25)").
Group = dict[str, str]
Interval = list[float]


class PairTest(Body):
    """A group's selection rate against the most favoured group's."""

    test: str
    p_value: float
    p_value_holm: float | None = Field(
        description="Holm-adjusted over every pair of groups meeting the minimum size; null "
        "when this pair is not among them"
    )
    pairs_adjusted_over: int


class GroupOutcomes(Body):
    """The group's decisions with a recorded outcome: error rates, and the equal-opportunity
    comparison."""

    n: int
    favourable_outcomes: int
    unfavourable_outcomes: int
    true_positives: int
    false_positives: int
    true_positive_rate: float | None
    true_positive_rate_ci95: Interval | None
    false_positive_rate: float | None
    true_positive_rate_ratio: float | None
    true_positive_rate_ratio_ci95: Interval | None
    equal_opportunity_verdict: Verdict
    below_reporting_threshold: bool


class FairnessGroup(Body):
    group: Group
    n: int
    below_minimum_size: bool
    too_small: bool = Field(description="The same as below_minimum_size (its former name)")
    favourable: int = Field(description="Decisions with the favourable label")
    selection_rate: float | None
    selection_rate_ci95: Interval | None
    outcomes: GroupOutcomes | None = Field(description="null when no outcome was recorded")
    disparate_impact_ratio: float | None
    disparate_impact_ratio_ci95: Interval | None
    test_vs_most_favoured: PairTest | None
    four_fifths_verdict: Verdict
    four_fifths_violation: bool | None
    below_reporting_threshold: bool


class ChiSquaredTest(Body):
    test: str
    statistic: float
    dof: int
    p_value: float
    min_expected_count: float


class FisherTest(Body):
    test: str
    p_value: float
    min_expected_count: float


class PermutationTest(Body):
    test: str
    statistic: float
    dof: int
    p_value: float
    min_expected_count: float
    seed: int
    resamples: int


HomogeneityTest = ChiSquaredTest | FisherTest | PermutationTest


class Comparison(Body):
    """The groups compared, and the verdicts over all of them."""

    groups: list[FairnessGroup]
    compared_groups: int
    too_small_groups: int
    most_favoured_group: Group | None
    least_favoured_group: Group | None
    disparate_impact_ratio_min: float | None
    disparate_impact_ratio_min_ci95: Interval | None
    four_fifths_verdict: Verdict
    verdict_reasons: list[str]
    four_fifths_violation: bool | None
    equal_opportunity_verdict: Verdict
    equal_opportunity_verdict_reasons: list[str]
    demographic_parity_difference: float | None
    equal_opportunity_difference: float | None
    equalized_odds_difference: float | None
    selection_rate_test: HomogeneityTest | None = Field(
        description="Are all selection rates equal? null with one group or no variation"
    )


class _PeriodHead(Body):
    period: str
    n: int


class TrendPeriod(Comparison, _PeriodHead):
    """One period of the window: its size and its comparison."""


class Filters(Body):
    since: datetime | None
    until: datetime | None
    model: str | None
    version: int | None
    route: str | None


class AttributeAsked(Body):
    name: str
    bins: list[Number] | None = Field(description="Edges for a numeric attribute")
    source: Literal["features", "context"] = Field(
        description="Whether the attribute is a model input or only in the decision's context"
    )


class VerdictRule(Body):
    ratio_threshold: float
    alpha: float
    min_group_size: int
    violated: str
    holds: str
    not_assessable: str
    ratio_ci95: str


class TrainingGroup(Body):
    """A group's figures on the validation set, as training recorded them."""

    n: int | None
    selection_rate: Number | None
    true_positive_rate: Number | None
    false_positive_rate: Number | None
    below_reporting_threshold: bool


class TrainingNote(Body):
    note: str


# Model version ("credit v1") -> group name -> figures; or, for several attributes, a note.
Training = dict[str, dict[str, TrainingGroup]] | TrainingNote


class CountedTo(Body):
    """Where in the log the counts stop: the records up to this chain seq, with their latest
    outcomes up to this outcome id."""

    seq: int
    outcome_id: int


class _ReportHead(Body):
    endpoint: str
    filters: Filters
    counted_to: CountedTo
    attributes: list[AttributeAsked]
    favourable_label: str
    min_group_size: int
    reporting_threshold: int
    n: int
    with_outcomes: int
    verdict_rule: VerdictRule
    seed: int = Field(description="Seed of the Monte Carlo permutation test, when one is needed")
    resamples: int


class GroupOverturned(Body):
    group: dict[str, str]
    overturned: int


class HumanOverturns(Body):
    """The decisions in the report a person overturned on appeal (the report counts them as the
    automated decisions they were)."""

    decisions: int
    by_group: list[GroupOverturned]
    note: str
    final_decisions: Comparison | None = Field(
        description="The same comparison over the final decisions: a decision a person "
        "overturned counts with the person's label. null when no decision was overturned"
    )


class _ReportTail(Body):
    human_overturns: HumanOverturns
    training: Training = Field(description="The validation-set figures recorded at training")
    models: list[str]
    window: Literal["day", "week", "month"] | None = Field(
        default=None, description="Present with a window"
    )
    trend: list[TrendPeriod] | None = Field(default=None, description="Present with a window")


class FairnessReport(_ReportTail, Comparison, _ReportHead):
    """Selection rates, error rates and disparity by protected group, with the verdicts."""
