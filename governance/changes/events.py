"""Appending to the ``governance`` chain, in the caller's transaction: a change whose record
cannot be written fails with it. ``govern audit verify`` checks the chain with the others."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from core.audit import ledger
from core.auth.schemas import Principal
from governance.changes.models import GovernanceEvent

CHAIN = "governance"


def columns_of(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": content["event_id"],
        "created_at": datetime.fromisoformat(content["created_at"]),
        "event": content["event"],
        "subject_kind": content["subject_kind"],
        "subject": content["subject"],
        "key_id": content["key_id"],
    }


def record(
    session: Session,
    principal: Principal,
    event: str,
    *,
    kind: str,
    subject: str,
    detail: dict[str, Any],
    at: datetime | None = None,
) -> tuple[int, str]:
    """Append one change; returns its (seq, record hash)."""
    return ledger.append_event(
        session,
        chain=CHAIN,
        table=GovernanceEvent.__table__,  # type: ignore[attr-defined]
        columns_of=columns_of,
        principal=principal,
        event=event,
        detail=detail,
        at=at,
        subject_kind=kind,
        subject=subject,
    )


def history(session: Session, kind: str, subject: str) -> list[GovernanceEvent]:
    """A subject's changes, oldest first."""
    return list(
        session.exec(
            select(GovernanceEvent)
            .where(GovernanceEvent.subject_kind == kind, GovernanceEvent.subject == subject)
            .order_by(col(GovernanceEvent.seq))
        ).all()
    )


def steps(session: Session, kind: str, subject: str) -> list[dict[str, Any]]:
    """A subject's changes as the API shows them: each with its place and hash in the chain."""
    return [
        {
            "seq": c.seq,
            "event": c.event,
            "at": c.created_at,
            "by": c.key_id,
            "record_hash": c.record_hash,
        }
        for c in history(session, kind, subject)
    ]
