"""Adverse decisions still waiting for their notice: the delivery clock's other half.

A notice is on the clock from the moment it is generated (``service``). A denial nobody has made
a notice for is on it too: Regulation B counts from the decision, not from the notice. The watch
covers the decisions made in the last ``notice_watch_days`` days (one index range on
``created_at``), grouped once by model version and label so that each version's favourable
class judges its own labels (as logged: a class or its text)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.audit import access
from core.auth.schemas import Principal
from core.config import Settings
from core.errors import NotFound
from core.pagination import Page
from governance.casework.models import AdverseNotice
from lineage import registry
from lineage.input_schema import InputSchema
from serving.models import DecisionRecord

STATES = ("overdue", "due_soon", "later")


@dataclass(frozen=True)
class Clock:
    watched_from: datetime  # decisions made before are out of the watch
    overdue_before: datetime  # a decision made before this is past its deadline
    soon_before: datetime  # ... before this, due within the due-soon days

    @classmethod
    def of(cls, settings: Settings, now: datetime) -> Clock:
        overdue = now - timedelta(days=settings.notice_deadline_days)
        return cls(
            watched_from=now - timedelta(days=settings.notice_watch_days),
            overdue_before=overdue,
            soon_before=overdue + timedelta(days=settings.notice_due_soon_days),
        )

    def conditions(self, state: str | None) -> list[Any]:
        made = col(DecisionRecord.created_at)
        if state == "overdue":
            return [made < self.overdue_before]
        if state == "due_soon":
            return [made >= self.overdue_before, made < self.soon_before]
        if state == "later":
            return [made >= self.soon_before]
        return []


def _waiting(clock: Clock) -> list[Any]:
    """Decisions in the watch with a label, their payload kept, and no notice."""
    noticed = select(AdverseNotice.decision_id).where(
        col(AdverseNotice.decision_id) == col(DecisionRecord.decision_id)
    )
    return [
        DecisionRecord.kind == "decision",
        col(DecisionRecord.created_at) >= clock.watched_from,
        col(DecisionRecord.label).is_not(None),
        col(DecisionRecord.payload).is_not(None),
        ~sa.exists(noticed),
    ]


def _unfavourable(session: Session, clock: Clock) -> tuple[list[Any], dict[str, int]]:
    """The (model, version, label) conditions of the adverse decisions waiting, and their counts
    by state."""
    made = col(DecisionRecord.created_at)

    def count_if(*condition: Any) -> Any:
        return sa.func.sum(sa.case((sa.and_(*condition), 1), else_=0))

    grouped = session.exec(
        select(  # type: ignore[call-overload]
            DecisionRecord.model,
            DecisionRecord.version,
            DecisionRecord.label,
            count_if(made < clock.overdue_before),
            count_if(made >= clock.overdue_before, made < clock.soon_before),
            sa.func.count(),
        )
        .where(*_waiting(clock))
        .group_by(DecisionRecord.model, DecisionRecord.version, DecisionRecord.label)
    ).all()
    schemas: dict[tuple[str, int], InputSchema | None] = {}
    counts = dict.fromkeys(STATES, 0)
    adverse = []
    for model, version, label, overdue, soon, total in grouped:
        key = (str(model), int(version or 0))
        if key not in schemas:
            try:
                _model, found = registry.get_version(session=session, name=key[0], version=key[1])
                schemas[key] = InputSchema.from_document(found.input_schema)
            except NotFound:
                schemas[key] = None
        schema = schemas[key]
        if schema is None or schema.is_favourable(label) is not False:
            continue
        adverse.append(
            sa.and_(
                DecisionRecord.model == model,
                DecisionRecord.version == version,
                DecisionRecord.label == label,
            )
        )
        late, near = int(overdue or 0), int(soon or 0)
        counts["overdue"] += late
        counts["due_soon"] += near
        counts["later"] += int(total) - late - near
    return adverse, counts


def counts(session: Session, settings: Settings, now: datetime) -> dict[str, int]:
    """How many adverse decisions in the watch have no notice, by their clock."""
    return _unfavourable(session, Clock.of(settings, now))[1]


def listing(
    session: Session,
    settings: Settings,
    principal: Principal,
    page: Page,
    state: str | None,
    now: datetime,
) -> tuple[list[dict[str, Any]], dict[str, int], int | None]:
    """The adverse decisions without a notice, newest first, in one clock state (or all); the
    counts by state; and the cursor of the next page."""
    clock = Clock.of(settings, now)
    adverse, by_state = _unfavourable(session, clock)
    rows: list[DecisionRecord] = []
    if adverse:
        query = (
            select(DecisionRecord)
            .where(*_waiting(clock), sa.or_(*adverse), *clock.conditions(state))
            .order_by(col(DecisionRecord.seq).desc())
            .limit(page.limit)
        )
        if page.cursor is not None:
            query = query.where(col(DecisionRecord.seq) < page.cursor)
        rows = list(session.exec(query).all())
    access.record(session, principal, "notice.awaiting", params={"state": state}, rows=len(rows))
    deadline = timedelta(days=settings.notice_deadline_days)
    listed = [
        {
            "decision_id": r.decision_id,
            "subject_id": r.subject_id,
            "endpoint": r.endpoint,
            "model": {"name": r.model, "version": r.version, "sha256": r.artifact_sha256},
            "label": r.label,
            "decided_at": r.created_at,
            "due_at": r.created_at + deadline,
            "clock": "overdue"
            if r.created_at < clock.overdue_before
            else "due_soon"
            if r.created_at < clock.soon_before
            else "later",
        }
        for r in rows
    ]
    cursor = rows[-1].seq if len(rows) == page.limit else None
    return listed, by_state, cursor
