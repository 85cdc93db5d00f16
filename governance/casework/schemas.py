"""The bodies of the notice routes, as ``governance.casework.service`` builds them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from core.responses import Body, Scalar
from explain.schemas import Counterfactual, LoggedModel, Move, Reason


class NoticeModel(Body):
    name: str
    version: int


class HeldBecause(Body):
    code: Literal["unstable_reasons", "protected_attribute_reason", "no_reason"]
    text: str


class Released(Body):
    at: datetime
    by: str
    rationale: str


class Sent(Body):
    at: datetime
    by: str
    channel: str


class NoticeReason(Body):
    rank: int
    code: str
    text: str
    feature: str = Field(description="The feature in words")
    value: str | None = Field(description="The applicant's value as read, or null if missing")


class ScoreDisclosure(Body):
    name: str
    value: float
    range: list[float]
    date: str
    source: str
    key_factors: list[str]


class SeedSet(Body):
    seed: int | None
    codes: list[str]


class SeedDifference(Body):
    seed: int | None
    added: list[str]
    removed: list[str]


class Stability(Body):
    stable: bool
    sets: list[SeedSet]
    differences: list[SeedDifference]
    method: str
    left_out_protected: list[str]


class TemplateUsed(Body):
    name: str
    version: int
    sha256: str


class NoticePublic(Body):
    """An adverse-action notice: its state, clock, reasons, stability check and hashes."""

    notice_id: str
    decision_id: str
    status: Literal["issued", "held"]
    clock: Literal["unsent", "due_soon", "overdue", "held", "sent"]
    held_because: list[HeldBecause]
    model: NoticeModel
    decision_made_at: datetime
    generated_at: datetime
    generated_by: str
    due_at: datetime
    released: Released | None
    sent: Sent | None
    reasons: list[NoticeReason]
    score_disclosure: ScoreDisclosure | None
    stability: Stability
    template: TemplateUsed
    html_sha256: str
    pdf_sha256: str | None
    compute_ms: dict[str, float]


class ClockCounts(Body):
    unsent: int
    due_soon: int
    overdue: int
    held: int
    sent: int


class NoticeList(Body):
    data: list[NoticePublic]
    count: int
    next_cursor: int | None
    counts: ClockCounts
    deadline_days: int
    due_soon_days: int
    as_of: datetime


class AwaitingCounts(Body):
    overdue: int
    due_soon: int
    later: int


class AwaitingDecision(Body):
    decision_id: str
    subject_id: str | None
    endpoint: str
    model: LoggedModel
    label: str
    decided_at: datetime
    due_at: datetime = Field(description="The decision's time plus GOV_NOTICE_DEADLINE_DAYS")
    clock: Literal["overdue", "due_soon", "later"]


class AwaitingList(Body):
    """Adverse decisions that have no notice yet, newest first."""

    data: list[AwaitingDecision]
    count: int
    next_cursor: int | None
    counts: AwaitingCounts
    watched_from: datetime = Field(
        description="Decisions made before this are out of the watch (GOV_NOTICE_WATCH_DAYS)"
    )
    deadline_days: int
    due_soon_days: int
    as_of: datetime


class VersionStability(Body):
    model: str
    version: int
    notices: int
    stable: int
    stable_share: float
    stable_share_ci95: list[float | None]


class StabilityReport(Body):
    versions: list[VersionStability]


# Appeal cases -------------------------------------------------------------------------------


class Evidence(Body):
    description: str
    filename: str | None = None
    sha256: str | None = None
    bytes: int | None = None


class ReviewSide(Body):
    label: Scalar | None
    score: float | None
    reasons: list[Reason]


class ReviewSeen(Body):
    """What the reviewer was shown when deciding."""

    before: ReviewSide
    after: ReviewSide
    overrides: dict[str, Move]


class LetterMade(Body):
    made_at: datetime
    made_by: str
    template: TemplateUsed
    html_sha256: str
    pdf_sha256: str


class AppealPublic(Body):
    """An appeal case and where it stands."""

    case_id: str
    decision_id: str
    model: NoticeModel
    status: Literal["open", "under_review", "decided", "closed"]
    opened_at: datetime
    opened_by: str
    due_at: datetime
    overdue: bool
    statement: str
    overrides: dict[str, Scalar | None]
    evidence: list[Evidence]
    reviewer: str | None
    assigned_at: datetime | None
    outcome: Literal["upheld", "overturned", "referred"] | None
    rationale: str | None
    decided_at: datetime | None
    decided_by: str | None
    human_label: str | None
    review: ReviewSeen | None
    closed_at: datetime | None
    letter: LetterMade | None = Field(
        description="The applicant's letter, once made (GET .../letter); kept after a purge"
    )


class AppealList(Body):
    data: list[AppealPublic]
    count: int
    next_cursor: int | None


class ReviewState(Body):
    label: Scalar | None
    favourable: bool | None
    score: float | None
    reasons: list[Reason]
    shap: dict[str, float] | None


class OutOfDistribution(Body):
    score: float | None
    is_outlier: bool | None


class AppealReview(Body):
    """The original decision next to the replay with the corrections."""

    case_id: str
    decision_id: str
    model: LoggedModel
    overrides: dict[str, Move]
    before: ReviewState
    after: ReviewState
    label_changed: bool
    counterfactuals: list[Counterfactual]
    out_of_distribution: OutOfDistribution
    shap_seed: int | None


class CorrectedFeature(Body):
    feature: str
    cases: int


class GroupOverturns(Body):
    group: str
    decided: int
    overturned: int
    overturn_rate: float
    overturn_rate_ci95: list[float] | None
    below_minimum_size: bool = Field(description="Fewer decided cases than the minimum size")


class VersionOversight(Body):
    model: str
    version: int
    opened: int
    decided: int
    overturned: int
    overturn_rate: float | None
    overturn_rate_ci95: list[float] | None
    median_days_to_decide: float | None
    overdue: int
    most_corrected_in_overturns: list[CorrectedFeature]
    by_group: list[GroupOverturns] | None = Field(description="With ?attribute=: by that group")


class Oversight(Body):
    """Human oversight figures (EU AI Act Art. 14), by model version."""

    attribute: str | None
    min_group_size: int
    versions: list[VersionOversight]
    deadline_days: int
    as_of: datetime
