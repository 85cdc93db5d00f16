"""The bodies of the notice routes, as ``governance.casework.service`` builds them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from core.responses import Body


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


class VersionStability(Body):
    model: str
    version: int
    notices: int
    stable: int
    stable_share: float
    stable_share_ci95: list[float | None]


class StabilityReport(Body):
    versions: list[VersionStability]
