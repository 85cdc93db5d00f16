"""The access trail: who read which decision data, when, with which query, and how many rows.

Every read of decision data appends one entry to the ``access`` hash chain, in the same
transaction as the read, so a read whose trail entry cannot be written fails with it. The chain is
verified by the same ``govern audit verify`` as the decision log.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Session

from core.audit import ledger
from core.audit.models import AccessRecord
from core.auth.schemas import Principal
from core.db import utcnow

CHAIN = "access"


def columns_of(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "entry_id": content["entry_id"],
        "created_at": datetime.fromisoformat(content["created_at"]),
        "key_id": content["key_id"],
        "role": content["role"],
        "action": content["action"],
        "target": content.get("target"),
        "rows": content["rows"],
    }


def record(
    session: Session,
    principal: Principal,
    action: str,
    *,
    target: str | None = None,
    params: dict[str, Any] | None = None,
    rows: int = 1,
    detail: dict[str, Any] | None = None,
) -> str:
    """Append one access entry in the caller's transaction; returns its entry id."""
    content = {
        "entry_id": str(uuid.uuid4()),
        "created_at": utcnow().isoformat(),
        "key_id": principal.key_id,
        "role": principal.role.value,
        "action": action,
        "target": target,
        "params": params or {},
        "rows": rows,
        "detail": detail or {},
    }
    ledger.append(
        session,
        chain=CHAIN,
        table=AccessRecord.__table__,  # type: ignore[attr-defined]
        contents=[content],
        columns_of=columns_of,
    )
    return str(content["entry_id"])
