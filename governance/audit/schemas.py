"""The bodies of the audit routes: chain verification and signed checkpoints, as
``governance.audit.verification`` builds them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.responses import Body, IsoTime


class Checkpoint(Body):
    """A signed checkpoint of a chain's head, as ``govern audit checkpoint`` exports it."""

    chain: str
    seq: int = Field(description="The head's sequence number (0 for an empty chain)")
    record_hash: str
    signed_at: IsoTime
    signature: str
    public_key: str | None
    algorithm: Literal["Ed25519"]


class TrustedKey(Body):
    public_key: str
    source: str


class Finding(Body):
    seq: int
    id: str | None
    problem: str = Field(description="altered, deleted or inserted")
    detail: str


class ChainCheck(Body):
    chain: str
    ok: bool
    records_checked: int
    head_seq: int
    head_hash: str
    first_problem: Finding | None


class CheckpointCheck(Body):
    """One checkpoint checked: its signature, then whether the chain still has the signed hash
    at the signed seq. ``trust`` is present when no trusted key was configured, ``problem`` when
    the checkpoint does not hold."""

    chain: str | None
    seq: int | None
    signed_at: IsoTime | None
    key_trusted: bool
    signature_valid: bool
    trust: str | None = None
    matches: bool
    problem: str | None = None


class VerifyReport(Body):
    """Every chain recomputed, every checkpoint checked. ``trust`` is present when signatures
    were checked only against the keys stored beside them, and says what that means."""

    ok: bool
    key_trusted: bool
    trusted_key: TrustedKey | None
    chains: list[ChainCheck]
    checkpoints: list[CheckpointCheck]
    trust: str | None = None


class ProbingDetail(Body):
    """What a probing alert says (``governance.audit.alerts``): the rule, the group's requests
    near the threshold, and a few of them. Meant for ``AlertPublic.detail``."""

    rule: str
    threshold: float
    score_band: float
    near_distance: float
    window_s: float
    near_threshold: int = Field(description="Requests scored within the band, in the window")
    near_duplicates: int
    from_replays: int
    near_duplicates_from_replays: int
    score_range: list[float] = Field(description="[lowest, highest] score among them")
    examples: list[str] = Field(description="Decision ids")
    replayed_decisions: list[str] = Field(description="Decision ids replayed with changes")


class NoticeOverdueDetail(Body):
    """What a notice-clock alert says (``governance.casework.service.clock_scan``)."""

    rule: str
    overdue: int = Field(description="Notices past their deadline and not sent, at the last scan")
    oldest_due_at: str | None = Field(description="Of the notices overdue; null with none")
    decisions: list[str] = Field(description="Decision ids of the longest overdue, at most 10")
    without_notice_overdue: int = Field(
        default=0,
        description="Adverse decisions past the deadline with no notice made "
        "(GET /api/v1/notices/awaiting)",
    )
