"""The ``case`` hash chain: every step of a notice or an appeal, appended in the caller's
transaction (a step whose record cannot be written fails with it), verified by ``govern audit
verify`` with the decision log and the access trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from core.audit import ledger
from core.auth.schemas import Principal
from governance.casework.models import CaseEvent

CHAIN = "case"


def columns_of(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": content["event_id"],
        "created_at": datetime.fromisoformat(content["created_at"]),
        "event": content["event"],
        "decision_id": content["decision_id"],
        "subject": content["subject"],
        "key_id": content["key_id"],
    }


def record(
    session: Session,
    principal: Principal,
    event: str,
    *,
    decision_id: str,
    subject: str,
    detail: dict[str, Any],
    at: datetime | None = None,
) -> tuple[int, str]:
    """Append one step; returns its (seq, record hash)."""
    return ledger.append_event(
        session,
        chain=CHAIN,
        table=CaseEvent.__table__,  # type: ignore[attr-defined]
        columns_of=columns_of,
        principal=principal,
        event=event,
        detail=detail,
        at=at,
        decision_id=decision_id,
        subject=subject,
    )
