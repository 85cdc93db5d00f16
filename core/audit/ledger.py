"""Appending to a hash chain inside a transaction.

Every append first takes the chain head's row lock (an UPDATE, so SQLite takes its write lock at
once and PostgreSQL locks the row until commit). That serialises appenders across threads and
processes, so sequence numbers are gap-free and every record links to the one before it. A batch
of records costs one lock and one commit: this is what makes group commit work.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from core.audit.chain import GENESIS, canonical_json, content_hash, record_hash
from core.audit.models import ChainHead
from core.auth.schemas import Principal
from core.db import utcnow

ColumnsOf = Callable[[dict[str, Any]], dict[str, Any]]


_HEAD = ChainHead.__table__  # type: ignore[attr-defined]
# Built once: constructing a statement costs more than running it on a group of a few records.
_LOCK = (
    _HEAD.update()
    .where(_HEAD.c.chain == sa.bindparam("head_chain"))
    .values(updated_at=sa.bindparam("now", type_=_HEAD.c.updated_at.type))
    .returning(_HEAD.c.seq, _HEAD.c.record_hash)
)
_MOVE = (
    _HEAD.update()
    .where(_HEAD.c.chain == sa.bindparam("head_chain"))
    .values(seq=sa.bindparam("head_seq"), record_hash=sa.bindparam("head_hash"))
)


def _lock_head(session: Session, chain: str) -> tuple[int, str]:
    """Lock the chain's head row and read it, in one statement (UPDATE ... RETURNING)."""
    row = session.execute(_LOCK, {"head_chain": chain, "now": utcnow()}).first()
    if row is None:  # the chain's first append
        try:
            with session.begin_nested():
                session.execute(
                    _HEAD.insert().values(
                        chain=chain, seq=0, record_hash=GENESIS, updated_at=utcnow()
                    )
                )
        except IntegrityError:
            pass  # another writer created it first; lock it like any other
        row = session.execute(_LOCK, {"head_chain": chain, "now": utcnow()}).one()
    return int(row.seq), str(row.record_hash)


def append(
    session: Session,
    *,
    chain: str,
    table: sa.Table,
    contents: Sequence[dict[str, Any]],
    columns_of: ColumnsOf,
) -> list[tuple[int, str]]:
    """Append records with the given contents; returns (seq, record_hash) for each."""
    seq, prev = _lock_head(session, chain)
    rows = []
    placed = []
    for content in contents:
        seq += 1
        payload = canonical_json(content)
        digest = content_hash(payload)
        link = record_hash(chain, seq, prev, digest)
        rows.append(
            {
                **columns_of(content),
                "seq": seq,
                "payload": payload,
                "content_hash": digest,
                "prev_hash": prev,
                "record_hash": link,
            }
        )
        placed.append((seq, link))
        prev = link
    if rows:
        session.execute(table.insert(), rows)
        session.execute(_MOVE, {"head_chain": chain, "head_seq": seq, "head_hash": prev})
    return placed


def append_event(
    session: Session,
    *,
    chain: str,
    table: sa.Table,
    columns_of: ColumnsOf,
    principal: Principal,
    event: str,
    detail: dict[str, Any],
    at: datetime | None = None,
    **subject: str,
) -> tuple[int, str]:
    """Append one step of a workflow (a case, a governance change) by ``principal``: the event,
    what it is about (``subject``), who and when, and its detail; returns its (seq, hash)."""
    content = {
        "event_id": str(uuid.uuid4()),
        "created_at": (at or utcnow()).isoformat(),
        "event": event,
        **subject,
        "key_id": principal.key_id,
        "role": principal.role.value,
        "detail": detail,
    }
    [placed] = append(session, chain=chain, table=table, contents=[content], columns_of=columns_of)
    return placed
