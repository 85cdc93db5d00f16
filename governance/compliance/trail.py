"""Reading the access trail: newest first, keyset-paged on the chain sequence number."""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import Session

from core.audit.models import AccessRecord
from core.responses import JsonValue

ACCESS: sa.Table = AccessRecord.__table__  # type: ignore[attr-defined]


class AccessEntry(BaseModel):
    entry_id: str
    seq: int
    created_at: datetime
    key_id: str
    role: str
    action: str
    target: str | None
    rows: int
    params: dict[str, JsonValue]
    detail: dict[str, JsonValue]
    record_hash: str


def entries(
    session: Session,
    *,
    limit: int,
    cursor: int | None,
    key_id: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[AccessEntry], int | None]:
    c = ACCESS.c
    query = sa.select(ACCESS).order_by(c.seq.desc()).limit(limit)
    if cursor is not None:
        query = query.where(c.seq < cursor)
    for column, value in (("key_id", key_id), ("action", action), ("target", target)):
        if value is not None:
            query = query.where(c[column] == value)
    if since is not None:
        query = query.where(c.created_at >= since)
    if until is not None:
        query = query.where(c.created_at < until)
    found = []
    for row in session.execute(query):
        content = json.loads(row.payload) if row.payload else {}
        found.append(
            AccessEntry(
                entry_id=row.entry_id,
                seq=row.seq,
                created_at=row.created_at,
                key_id=row.key_id,
                role=row.role,
                action=row.action,
                target=row.target,
                rows=row.rows,
                params=content.get("params") or {},
                detail=content.get("detail") or {},
                record_hash=row.record_hash,
            )
        )
    return found, found[-1].seq if len(found) == limit else None
