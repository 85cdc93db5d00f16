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


def verify_rows(
    chain: str,
    rows: Iterable[ChainRow],
    recorded_head: tuple[int, str] | None = None,
) -> VerifyResult:
    """Walk rows in seq order and report the first record altered, deleted or inserted."""
    expected_seq, prev = 1, GENESIS
    checked = 0
    for row in rows:
        checked += 1
        if recorded_head is not None and row.seq > recorded_head[0] and row.seq == expected_seq:
            # Appenders always move the head; a record beyond it was put there by hand.
            return VerifyResult(
                chain,
                checked,
                row.seq - 1,
                prev,
                Finding(
                    row.seq,
                    row.ident,
                    "inserted",
                    f"it lies beyond the recorded chain head {recorded_head[0]}",
                ),
            )
        if row.seq > expected_seq:
            missing = (
                f"{expected_seq}"
                if row.seq == expected_seq + 1
                else f"{expected_seq}..{row.seq - 1}"
            )
            return VerifyResult(
                chain,
                checked,
                expected_seq - 1,
                prev,
                Finding(
                    expected_seq,
                    None,
                    "deleted",
                    f"record(s) {missing} are missing before {row.ident}",
                ),
            )
        if row.seq < expected_seq:
            return VerifyResult(
                chain,
                checked,
                expected_seq - 1,
                prev,
                Finding(
                    row.seq, row.ident, "inserted", "a second record claims an existing position"
                ),
            )
        self_consistent = row.record_hash == record_hash(
            chain, row.seq, row.prev_hash, row.content_hash
        )
        content_ok = row.payload is None or content_hash(row.payload) == row.content_hash
        if not (content_ok and row.columns_match):
            what = (
                "its content no longer matches its hash"
                if not content_ok
                else "a column differs from its content"
            )
            return VerifyResult(
                chain, checked, row.seq - 1, prev, Finding(row.seq, row.ident, "altered", what)
            )
        if row.prev_hash != prev:
            problem = "inserted" if self_consistent else "altered"
            return VerifyResult(
                chain,
                checked,
                row.seq - 1,
                prev,
                Finding(row.seq, row.ident, problem, "it does not link to the record before it"),
            )
        if not self_consistent:
            return VerifyResult(
                chain,
                checked,
                row.seq - 1,
                prev,
                Finding(row.seq, row.ident, "altered", "its record hash does not recompute"),
            )
        prev = row.record_hash
        expected_seq += 1
    head_seq = expected_seq - 1
    if recorded_head is not None:
        recorded_seq, recorded_hash = recorded_head
        if recorded_seq > head_seq:
            return VerifyResult(
                chain,
                checked,
                head_seq,
                prev,
                Finding(
                    head_seq + 1,
                    None,
                    "deleted",
                    f"the chain head says {recorded_seq} records; found {head_seq}",
                ),
            )
        if recorded_seq < head_seq:
            return VerifyResult(
                chain,
                checked,
                head_seq,
                prev,
                Finding(
                    recorded_seq + 1,
                    None,
                    "inserted",
                    f"records after the recorded head {recorded_seq}",
                ),
            )
        if recorded_hash != prev:
            return VerifyResult(
                chain,
                checked,
                head_seq,
                prev,
                Finding(
                    head_seq,
                    None,
                    "altered",
                    "the last record's hash differs from the recorded head",
                ),
            )
    return VerifyResult(chain, checked, head_seq, prev, None)
