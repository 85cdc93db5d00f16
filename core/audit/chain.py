"""Hash chains: pure functions, no database.

A record's content is canonical JSON (sorted keys, no spaces, finite numbers only). Its
``content_hash`` is the sha256 of those bytes, and its ``record_hash`` binds the content to its
place in the chain: sha256 of "<chain>|<seq>|<prev_hash>|<content_hash>". Changing, removing or
inserting one record breaks the link to the next; rewriting the whole chain consistently is
caught by a signed checkpoint of an earlier head.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def content_hash(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def record_hash(chain: str, seq: int, prev_hash: str, content: str) -> str:
    return hashlib.sha256(f"{chain}|{seq}|{prev_hash}|{content}".encode()).hexdigest()


def is_finite_json(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(is_finite_json(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(is_finite_json(v) for v in value)
    return True


@dataclass(frozen=True)
class ChainRow:
    """What verification needs of one stored record."""

    seq: int
    ident: str
    payload: str | None  # None once retention has purged it; content_hash still binds it
    content_hash: str
    prev_hash: str
    record_hash: str
    columns_match: bool = True


@dataclass
class Finding:
    seq: int
    ident: str | None
    problem: str  # altered | deleted | inserted
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "id": self.ident, "problem": self.problem, "detail": self.detail}


@dataclass
class VerifyResult:
    chain: str
    checked: int
    head_seq: int
    head_hash: str
    first_problem: Finding | None

    @property
    def ok(self) -> bool:
        return self.first_problem is None


@dataclass
class _Walk:
    """Where a verification stands: the seq the next record must have, and the hash it must link
    to (the record hash of the last record that verified)."""

    chain: str
    recorded_head: tuple[int, str] | None
    seq: int = 1
    prev: str = GENESIS


# Checks of one record, in order of precedence: each returns its finding, or None.


def _beyond_recorded_head(walk: _Walk, row: ChainRow) -> Finding | None:
    # Appenders always move the head; a record beyond it was put there by hand.
    head = walk.recorded_head
    if head is None or row.seq <= head[0] or row.seq != walk.seq:
        return None
    return Finding(
        row.seq, row.ident, "inserted", f"it lies beyond the recorded chain head {head[0]}"
    )


def _missing_before(walk: _Walk, row: ChainRow) -> Finding | None:
    if row.seq <= walk.seq:
        return None
    missing = f"{walk.seq}" if row.seq == walk.seq + 1 else f"{walk.seq}..{row.seq - 1}"
    return Finding(walk.seq, None, "deleted", f"record(s) {missing} are missing before {row.ident}")


def _position_taken(walk: _Walk, row: ChainRow) -> Finding | None:
    if row.seq >= walk.seq:
        return None
    return Finding(row.seq, row.ident, "inserted", "a second record claims an existing position")


def _content_altered(_walk: _Walk, row: ChainRow) -> Finding | None:
    if row.payload is not None and content_hash(row.payload) != row.content_hash:
        return Finding(row.seq, row.ident, "altered", "its content no longer matches its hash")
    if not row.columns_match:
        return Finding(row.seq, row.ident, "altered", "a column differs from its content")
    return None


def _self_consistent(chain: str, row: ChainRow) -> bool:
    return row.record_hash == record_hash(chain, row.seq, row.prev_hash, row.content_hash)


def _unlinked(walk: _Walk, row: ChainRow) -> Finding | None:
    if row.prev_hash == walk.prev:
        return None
    # A record whose own hash recomputes was written by someone who knew the format: inserted.
    problem = "inserted" if _self_consistent(walk.chain, row) else "altered"
    return Finding(row.seq, row.ident, problem, "it does not link to the record before it")


def _hash_altered(walk: _Walk, row: ChainRow) -> Finding | None:
    if _self_consistent(walk.chain, row):
        return None
    return Finding(row.seq, row.ident, "altered", "its record hash does not recompute")


_RECORD_CHECKS = (
    _beyond_recorded_head,
    _missing_before,
    _position_taken,
    _content_altered,
    _unlinked,
    _hash_altered,
)


# Checks of the end of the chain against the recorded head, in order of precedence.


def _head_missing(walk: _Walk, recorded: tuple[int, str]) -> Finding | None:
    head_seq = walk.seq - 1
    if recorded[0] <= head_seq:
        return None
    return Finding(
        head_seq + 1,
        None,
        "deleted",
        f"the chain head says {recorded[0]} records; found {head_seq}",
    )


def _head_exceeded(walk: _Walk, recorded: tuple[int, str]) -> Finding | None:
    if recorded[0] >= walk.seq - 1:
        return None
    return Finding(
        recorded[0] + 1, None, "inserted", f"records after the recorded head {recorded[0]}"
    )


def _head_hash_differs(walk: _Walk, recorded: tuple[int, str]) -> Finding | None:
    if recorded[1] == walk.prev:
        return None
    return Finding(
        walk.seq - 1, None, "altered", "the last record's hash differs from the recorded head"
    )


_HEAD_CHECKS = (_head_missing, _head_exceeded, _head_hash_differs)


def _record_finding(walk: _Walk, row: ChainRow) -> Finding | None:
    for check in _RECORD_CHECKS:
        found = check(walk, row)
        if found is not None:
            return found
    return None


def _head_finding(walk: _Walk) -> Finding | None:
    if walk.recorded_head is None:
        return None
    for check in _HEAD_CHECKS:
        found = check(walk, walk.recorded_head)
        if found is not None:
            return found
    return None


def verify_rows(
    chain: str,
    rows: Iterable[ChainRow],
    recorded_head: tuple[int, str] | None = None,
) -> VerifyResult:
    """Walk rows in seq order and report the first record altered, deleted or inserted.

    The head reported is the last record that verified (its seq and record hash), and a chain
    whose records all verify is then checked against the recorded head."""
    walk = _Walk(chain, recorded_head)
    checked = 0
    for row in rows:
        checked += 1
        found = _record_finding(walk, row)
        if found is not None:
            return VerifyResult(chain, checked, walk.seq - 1, walk.prev, found)
        walk.seq, walk.prev = walk.seq + 1, row.record_hash
    return VerifyResult(chain, checked, walk.seq - 1, walk.prev, _head_finding(walk))
