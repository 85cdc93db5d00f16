"""Outcomes: what actually happened after a decision (the loan was repaid, or not).

Appended, never overwritten: a correction is a new row, and a decision's outcome is its latest
row. An outcome must be one of the model's classes (the target the model predicts), so that it
can be compared with the decision. Writing outcomes is the job of the ``outcomes`` role (a loan
servicing system needs no other right), and of ``admin`` and ``data-scientist``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from core.db import utcnow
from core.errors import GovernanceError, InvalidInput
from lineage import registry
from lineage.input_schema import InputSchema
from serving.lookups import get_decision
from serving.models import DecisionOutcome, DecisionRecord

MAX_BULK = 10_000
# PostgreSQL advisory lock between writers of outcomes (shared, for their transaction) and a
# reader of the outcome mark (exclusive, for one statement): see ``settled_mark``.
OUTCOME_WRITERS = 0x676F7665726E_01  # "govern", 1


def settled_mark(connection: sa.Connection) -> int:
    """The highest outcome id such that every outcome with an id at or below it is committed and
    visible: counts kept up to this mark miss nothing when they later count past it.

    Ids are handed out before commit, so on PostgreSQL a higher id can commit before a lower one.
    Each writer holds the shared lock from before it takes an id until it commits; the reader
    takes it exclusively, which waits for writers in flight, reads the highest id, and lets go.
    SQLite has one writer at a time and a reader's snapshot never holds part of a write."""
    highest = sa.select(sa.func.coalesce(sa.func.max(DecisionOutcome.__table__.c.id), 0))  # type: ignore[attr-defined]
    if connection.dialect.name != "postgresql":
        return int(connection.execute(highest).scalar_one())
    connection.execute(sa.select(sa.func.pg_advisory_lock(OUTCOME_WRITERS)))
    try:
        return int(connection.execute(highest).scalar_one())
    finally:
        connection.execute(sa.select(sa.func.pg_advisory_unlock(OUTCOME_WRITERS)))


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: str | int | bool = Field(description="One of the model's classes, e.g. 1 = repaid.")
    observed_at: AwareDatetime = Field(description="When it was observed, with a timezone.")


class BulkOutcomeIn(OutcomeIn):
    decision_id: str = Field(min_length=1, max_length=64)


class BulkOutcomesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcomes: list[BulkOutcomeIn] = Field(min_length=1, max_length=MAX_BULK)


class OutcomePublic(BaseModel):
    id: int
    decision_id: str
    outcome: str
    observed_at: datetime
    recorded_at: datetime
    recorded_by: str
    supersedes: int | None = None


def _classes(session: Session, record: DecisionRecord, cache: dict[Any, list[str]]) -> list[str]:
    key = (record.model, record.version)
    if key not in cache:
        _m, version = registry.get_version(
            session=session, name=str(record.model), version=int(record.version or 0)
        )
        cache[key] = [str(c) for c in InputSchema.from_document(version.input_schema).classes]
    return cache[key]


def _check(
    session: Session,
    decision_id: str,
    item: OutcomeIn,
    prefix: str,
    cache: dict[Any, list[str]],
) -> tuple[DecisionRecord, list[dict[str, str]]]:
    record = get_decision(session, decision_id)
    problems = []
    classes = _classes(session, record, cache)
    if str(item.outcome) not in classes:
        problems.append(
            {
                "field": f"{prefix}outcome",
                "message": f"must be one of the model's classes {classes}",
            }
        )
    if item.observed_at < record.created_at:
        problems.append(
            {"field": f"{prefix}observed_at", "message": "is before the decision was made"}
        )
    if item.observed_at > utcnow():
        problems.append({"field": f"{prefix}observed_at", "message": "is in the future"})
    return record, problems


def _latest(session: Session, decision_ids: list[str]) -> dict[str, int]:
    rows = session.exec(
        select(DecisionOutcome.decision_id, DecisionOutcome.id)
        .where(col(DecisionOutcome.decision_id).in_(decision_ids))
        .order_by(col(DecisionOutcome.id))
    ).all()
    return {decision_id: int(id_ or 0) for decision_id, id_ in rows}


def _public(row: DecisionOutcome, previous: int | None) -> OutcomePublic:
    assert row.id is not None
    return OutcomePublic(
        id=row.id,
        decision_id=row.decision_id,
        outcome=row.outcome,
        observed_at=row.observed_at,
        recorded_at=row.recorded_at,
        recorded_by=row.recorded_by,
        supersedes=previous,
    )


def record_outcomes(
    session: Session, items: Sequence[tuple[str, OutcomeIn]], actor: str, bulk: bool
) -> list[OutcomePublic]:
    """All or nothing: every item is checked first, and any problem refuses the whole call."""
    cache: dict[Any, list[str]] = {}
    problems: list[dict[str, str]] = []
    for i, (decision_id, item) in enumerate(items):
        prefix = f"outcomes.{i}." if bulk else ""
        try:
            _record, found = _check(session, decision_id, item, prefix, cache)
        except GovernanceError as exc:  # unknown, malformed or rejected id, in a bulk call
            if not bulk:
                raise
            found = [{"field": f"{prefix}decision_id", "message": exc.message}]
        problems.extend(found)
    if problems:
        raise InvalidInput("outcomes not recorded", details=problems)
    previous = _latest(session, [d for d, _ in items])
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_advisory_xact_lock_shared(OUTCOME_WRITERS)))
    rows = []
    for decision_id, item in items:
        row = DecisionOutcome(
            decision_id=decision_id,
            outcome=str(item.outcome),
            observed_at=item.observed_at,
            recorded_by=actor,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    return [_public(row, previous.get(row.decision_id)) for row in rows]


def history(session: Session, decision_id: str) -> list[OutcomePublic]:
    get_decision(session, decision_id)
    rows = session.exec(
        select(DecisionOutcome)
        .where(DecisionOutcome.decision_id == decision_id)
        .order_by(col(DecisionOutcome.id))
    ).all()
    result, previous = [], None
    for row in rows:
        result.append(_public(row, previous))
        previous = row.id
    return result
