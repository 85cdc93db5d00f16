"""Every kind of finding ``verify_rows`` reports, its exact words, and which one wins when a
record has several problems. Pure: rows are built in memory, no database."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from core.audit.chain import GENESIS, ChainRow, content_hash, record_hash, verify_rows

CHAIN = "decision"


def _chain(n: int) -> list[ChainRow]:
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        payload = f'{{"n":{seq}}}'
        digest = content_hash(payload)
        rows.append(
            ChainRow(seq, f"r{seq}", payload, digest, prev, record_hash(CHAIN, seq, prev, digest))
        )
        prev = rows[-1].record_hash
    return rows


def _forged(seq: int, prev: str, ident: str = "forged") -> ChainRow:
    """A record whose own hashes recompute: written by someone who knew the format."""
    digest = content_hash("{}")
    return ChainRow(seq, ident, "{}", digest, prev, record_hash(CHAIN, seq, prev, digest))


def _verify(rows: list[ChainRow], head: tuple[int, str] | None = None) -> dict[str, Any]:
    result = verify_rows(CHAIN, rows, head)
    return {
        "checked": result.checked,
        "head": (result.head_seq, result.head_hash),
        "finding": result.first_problem.as_dict() if result.first_problem else None,
    }


ROWS = _chain(5)
HEAD = (5, ROWS[-1].record_hash)


def _at(seq: int) -> tuple[int, str]:
    return (seq, ROWS[seq - 1].record_hash if seq else GENESIS)


def test_an_intact_chain_verifies_with_and_without_its_head() -> None:
    assert _verify(ROWS) == {"checked": 5, "head": HEAD, "finding": None}
    assert _verify(ROWS, HEAD) == {"checked": 5, "head": HEAD, "finding": None}
    assert _verify([], (0, GENESIS)) == {"checked": 0, "head": (0, GENESIS), "finding": None}


def _finding(seq: int, ident: str | None, problem: str, detail: str) -> dict[str, Any]:
    return {"seq": seq, "id": ident, "problem": problem, "detail": detail}


CASES = {
    "beyond the recorded head": (
        [*ROWS, _forged(6, ROWS[-1].record_hash)],
        HEAD,
        6,
        _at(5),
        _finding(6, "forged", "inserted", "it lies beyond the recorded chain head 5"),
    ),
    "one record missing": (
        [*ROWS[:2], *ROWS[3:]],
        None,
        3,
        _at(2),
        _finding(3, None, "deleted", "record(s) 3 are missing before r4"),
    ),
    "several records missing": (
        [ROWS[0], ROWS[4]],
        None,
        2,
        _at(1),
        _finding(2, None, "deleted", "record(s) 2..4 are missing before r5"),
    ),
    "a second record at a position": (
        [*ROWS[:3], _forged(3, ROWS[1].record_hash), *ROWS[3:]],
        None,
        4,
        _at(3),
        _finding(3, "forged", "inserted", "a second record claims an existing position"),
    ),
    "altered content": (
        [*ROWS[:1], replace(ROWS[1], payload='{"n":99}'), *ROWS[2:]],
        None,
        2,
        _at(1),
        _finding(2, "r2", "altered", "its content no longer matches its hash"),
    ),
    "an altered column": (
        [*ROWS[:1], replace(ROWS[1], columns_match=False), *ROWS[2:]],
        None,
        2,
        _at(1),
        _finding(2, "r2", "altered", "a column differs from its content"),
    ),
    "a consistent record that does not link": (
        [*ROWS[:2], _forged(3, "a" * 64, "r3"), *ROWS[3:]],
        None,
        3,
        _at(2),
        _finding(3, "r3", "inserted", "it does not link to the record before it"),
    ),
    "a changed link": (
        [*ROWS[:2], replace(ROWS[2], prev_hash="a" * 64), *ROWS[3:]],
        None,
        3,
        _at(2),
        _finding(3, "r3", "altered", "it does not link to the record before it"),
    ),
    "a record hash that does not recompute": (
        [*ROWS[:2], replace(ROWS[2], record_hash="b" * 64), *ROWS[3:]],
        None,
        3,
        _at(2),
        _finding(3, "r3", "altered", "its record hash does not recompute"),
    ),
    "the last record deleted": (
        ROWS[:4],
        HEAD,
        4,
        _at(4),
        _finding(5, None, "deleted", "the chain head says 5 records; found 4"),
    ),
    "a rewritten last record": (
        [*ROWS[:4], _forged(5, ROWS[3].record_hash, "r5")],
        HEAD,
        5,
        (5, _forged(5, ROWS[3].record_hash).record_hash),
        _finding(5, None, "altered", "the last record's hash differs from the recorded head"),
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_each_kind_of_finding_is_named_with_the_head_before_it(case: str) -> None:
    rows, head, checked, verified_head, finding = CASES[case]
    assert _verify(rows, head) == {"checked": checked, "head": verified_head, "finding": finding}


def test_the_first_problem_wins_and_checks_keep_their_precedence() -> None:
    # A record beyond the head is named as such, whatever else is wrong with it.
    beyond = replace(_forged(6, "c" * 64), payload="tampered", columns_match=False)
    assert _verify([*ROWS, beyond], HEAD)["finding"]["detail"] == (
        "it lies beyond the recorded chain head 5"
    )
    # Changed content is named before a broken link or a hash that does not recompute.
    broken = replace(ROWS[2], payload="x", columns_match=False, prev_hash="a" * 64)
    assert _verify([*ROWS[:2], broken, *ROWS[3:]])["finding"]["detail"] == (
        "its content no longer matches its hash"
    )
    # A purged payload is not altered content: the column check still applies.
    purged = replace(ROWS[2], payload=None, columns_match=False)
    assert _verify([*ROWS[:2], purged, *ROWS[3:]])["finding"]["detail"] == (
        "a column differs from its content"
    )
    # The first bad record is reported, not a later one.
    twice = [*ROWS[:1], replace(ROWS[1], record_hash="b" * 64), replace(ROWS[2], payload="x")]
    assert _verify(twice)["finding"]["seq"] == 2
    # The records are checked before the head: a gap is named, not the short chain.
    assert _verify([ROWS[0], ROWS[2]], HEAD)["finding"]["problem"] == "deleted"
    assert _verify([ROWS[0], ROWS[2]], HEAD)["finding"]["detail"].startswith("record(s) 2")


def test_a_purged_payload_still_verifies_by_its_content_hash() -> None:
    purged = [replace(row, payload=None) for row in ROWS]
    assert _verify(purged, HEAD) == {"checked": 5, "head": HEAD, "finding": None}
