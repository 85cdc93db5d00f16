"""Verifying hash chains and signing checkpoints of their heads."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.audit import access, signing
from core.audit.chain import ChainRow, VerifyResult, verify_rows
from core.audit.models import AccessRecord, AuditCheckpoint, ChainHead
from core.config import Settings
from core.db import utcnow
from core.errors import InvalidInput
from governance.casework import events
from governance.casework.models import CaseEvent
from governance.changes import events as changes
from governance.changes.models import GovernanceEvent
from serving.decision_log import CHAIN as DECISIONS
from serving.decision_log import columns_of
from serving.models import DecisionRecord


@dataclass(frozen=True)
class ChainTable:
    table: sa.Table
    ident: str
    columns_of: Callable[[dict[str, Any]], dict[str, Any]]


def _chains() -> dict[str, ChainTable]:
    return {
        DECISIONS: ChainTable(DecisionRecord.__table__, "decision_id", columns_of),  # type: ignore[attr-defined]
        access.CHAIN: ChainTable(AccessRecord.__table__, "entry_id", access.columns_of),  # type: ignore[attr-defined]
        events.CHAIN: ChainTable(CaseEvent.__table__, "event_id", events.columns_of),  # type: ignore[attr-defined]
        changes.CHAIN: ChainTable(GovernanceEvent.__table__, "event_id", changes.columns_of),  # type: ignore[attr-defined]
    }


def chain_names() -> list[str]:
    return sorted(_chains())


def _columns_match(row: Any, spec: ChainTable) -> bool:
    if row.payload is None:
        return True
    try:
        expected = spec.columns_of(json.loads(row.payload))
    except (ValueError, KeyError, TypeError):
        return False
    return all(getattr(row, name) == value for name, value in expected.items())


def _rows(session: Session, spec: ChainTable, chunk: int = 5000) -> Iterator[ChainRow]:
    table = spec.table
    last = 0
    while True:
        rows = session.execute(
            sa.select(table).where(table.c.seq > last).order_by(table.c.seq).limit(chunk)
        ).all()
        if not rows:
            return
        for row in rows:
            yield ChainRow(
                seq=row.seq,
                ident=getattr(row, spec.ident),
                payload=row.payload,
                content_hash=row.content_hash,
                prev_hash=row.prev_hash,
                record_hash=row.record_hash,
                columns_match=_columns_match(row, spec),
            )
        last = rows[-1].seq


def verify_chain(session: Session, chain: str) -> VerifyResult:
    specs = _chains()
    if chain not in specs:
        raise InvalidInput(
            f"unknown chain {chain!r}",
            details=[{"field": "chain", "message": f"one of {sorted(specs)}"}],
        )
    head = session.get(ChainHead, chain)
    recorded = (head.seq, head.record_hash) if head else None
    return verify_rows(chain, _rows(session, specs[chain]), recorded)


def record_hash_at(session: Session, chain: str, seq: int) -> str | None:
    table = _chains()[chain].table
    return session.execute(
        sa.select(table.c.record_hash).where(table.c.seq == seq)
    ).scalar_one_or_none()


UNTRUSTED = (
    "the signature was NOT verified against a trusted key: only against the public key stored "
    "beside the checkpoint, which anyone who can write the database can replace with their own "
    "after re-signing; set GOV_SIGNING_PUBLIC_KEY_FILE (see `govern audit public-key`)"
)


def check_checkpoint(
    session: Session, checkpoint: dict[str, Any], trusted: signing.TrustedKey | None
) -> dict[str, Any]:
    """A checkpoint holds if its signature is valid and the chain still has that hash at that seq.

    With a trusted key, the signature must verify against it, and a checkpoint that names another
    public key fails. Without one, it is checked against its own stored key, and says so."""
    stored_key = checkpoint.get("public_key")
    result: dict[str, Any] = {
        "chain": checkpoint.get("chain"),
        "seq": checkpoint.get("seq"),
        "signed_at": checkpoint.get("signed_at"),
        "key_trusted": trusted is not None,
    }
    if trusted is None:
        valid = signing.signature_valid(checkpoint, stored_key)
        result.update(signature_valid=valid, trust=UNTRUSTED)
        problem = "the signature does not verify against the public key stored with it"
    elif stored_key and not signing.same_key(stored_key, trusted.public_key):
        result.update(
            signature_valid=False,
            matches=False,
            problem=f"the checkpoint names a public key that is not the trusted key (from the "
            f"{trusted.source}): it was not signed by the trusted signer",
        )
        return result
    else:
        valid = signing.signature_valid(checkpoint, trusted.public_key)
        result["signature_valid"] = valid
        problem = (
            f"the signature does not verify against the trusted key (from the {trusted.source})"
        )
    if not valid:
        result.update(matches=False, problem=problem)
        return result
    if checkpoint["chain"] not in _chains():
        result.update(matches=False, problem="the checkpoint names no known chain")
        return result
    found = record_hash_at(session, checkpoint["chain"], int(checkpoint["seq"]))
    matches = found == checkpoint["record_hash"]
    result["matches"] = matches
    if not matches:
        result["problem"] = (
            f"record {checkpoint['seq']} is missing"
            if found is None
            else f"record {checkpoint['seq']} now hashes to {found}, the signed head was {checkpoint['record_hash']}: "
            "the chain was rewritten"
        )
    return result


def stored_checkpoints(session: Session, chain: str | None = None) -> list[AuditCheckpoint]:
    query = select(AuditCheckpoint).order_by(col(AuditCheckpoint.id))
    if chain:
        query = query.where(AuditCheckpoint.chain == chain)
    return list(session.exec(query).all())


def checkpoint_dict(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    return {
        "chain": checkpoint.chain,
        "seq": checkpoint.seq,
        "record_hash": checkpoint.record_hash,
        "signed_at": checkpoint.signed_at.isoformat(),
        "signature": checkpoint.signature,
        "public_key": checkpoint.public_key,
        "algorithm": "Ed25519",
    }


def create_checkpoint(
    session: Session, settings: Settings, chain: str, actor: str
) -> AuditCheckpoint:
    if chain not in _chains():
        raise InvalidInput(
            f"unknown chain {chain!r}",
            details=[{"field": "chain", "message": f"one of {chain_names()}"}],
        )
    key = signing.load_signing_key(settings)
    head = session.get(ChainHead, chain)
    seq, digest = (head.seq, head.record_hash) if head else (0, "0" * 64)
    signed_at = utcnow()
    checkpoint = AuditCheckpoint(
        chain=chain,
        seq=seq,
        record_hash=digest,
        signed_at=signed_at,
        signature=signing.sign(key, chain, seq, digest, signed_at.isoformat()),
        public_key=signing.public_key_b64(key),
        created_by=actor,
    )
    session.add(checkpoint)
    session.flush()
    return checkpoint


def verify_report(
    session: Session,
    settings: Settings,
    chains: list[str] | None = None,
    extra_checkpoints: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Every chain, every stored checkpoint, and any exported checkpoints given.

    ``key_trusted`` says whether signatures were checked against a key from outside the
    database; when false, ``trust`` says plainly what that means."""
    trusted = signing.trusted_public_key(settings)
    report: dict[str, Any] = {
        "ok": True,
        "key_trusted": trusted is not None,
        "trusted_key": (
            {"public_key": trusted.public_key, "source": trusted.source} if trusted else None
        ),
        "chains": [],
        "checkpoints": [],
    }
    if trusted is None:
        report["trust"] = UNTRUSTED
    for chain in chains or chain_names():
        result = verify_chain(session, chain)
        report["chains"].append(
            {
                "chain": chain,
                "ok": result.ok,
                "records_checked": result.checked,
                "head_seq": result.head_seq,
                "head_hash": result.head_hash,
                "first_problem": result.first_problem.as_dict() if result.first_problem else None,
            }
        )
        report["ok"] &= result.ok
    given = [checkpoint_dict(c) for c in stored_checkpoints(session)] + list(
        extra_checkpoints or []
    )
    for checkpoint in given:
        checked = check_checkpoint(session, checkpoint, trusted)
        report["checkpoints"].append(checked)
        report["ok"] &= bool(checked["matches"])
    return report
