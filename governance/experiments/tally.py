"""An experiment's counts kept up to date, not counted again from the start on every report.

The same reasoning as the fairness tally (``explain.fairness.tally``), whose marks this reuses:
the log only grows, so the counts of every arm as of one place in the log (the records up to a
seq, each with its latest outcome up to a settled outcome id), plus the counts of what came
after, are the counts now. Bringing a tally up to date counts the new records (an index range on
seq), and the records whose latest outcome a new outcome changed (their old contribution taken
away, the new one added). A retention purge, or a log that is not the one counted, makes it
count from the start again.

An arm's slowest latencies (the tail its 99th percentile lies in) are kept the same way: a
decision's latency never changes, so the slowest of all are the slowest of the kept ones and of
the new ones. A few more than the report needs are kept (twice as many), and when the report
needs more than were kept, that arm's tail is read again from the start.

Each engine has its own tallies, at most ``ENTRIES`` (the least recently used goes).
"""

from __future__ import annotations

import heapq
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import sqlalchemy as sa

from explain.fairness.query import Attribute, Span
from explain.fairness.tally import Kept, Marks, _hash_at, per_engine, read_marks
from governance.experiments import query
from governance.experiments.query import TOTALS, ArmCounts, ArmSpec

ENTRIES = 64

Counts = dict[str, ArmCounts]


def combine(base: Counts, change: Counts, sign: int = 1) -> Counts:
    """``base`` plus (or minus) ``change``, arm by arm: totals, score bins and groups."""
    result: Counts = {}
    for arm, have in base.items():
        other = change.get(arm, ArmCounts())
        merged = ArmCounts(
            **{name: getattr(have, name) + sign * getattr(other, name) for name in TOTALS},
            auc_positive=[
                a + sign * b for a, b in zip(have.auc_positive, other.auc_positive, strict=True)
            ],
            auc_negative=[
                a + sign * b for a, b in zip(have.auc_negative, other.auc_negative, strict=True)
            ],
        )
        for attribute in set(have.groups) | set(other.groups):
            mine, theirs = have.groups.get(attribute, {}), other.groups.get(attribute, {})
            table = {}
            for group in sorted(set(mine) | set(theirs)):
                a, b = mine.get(group, (0, 0, 0)), theirs.get(group, (0, 0, 0))
                summed = tuple(x + sign * y for x, y in zip(a, b, strict=True))
                if min(summed) < 0:  # taking away what was never counted: the tally is wrong
                    raise ValueError(f"arm {arm}: group {group} of {attribute} was not counted")
                if summed[0]:
                    table[group] = (summed[0], summed[1], summed[2])
            merged.groups[attribute] = table
        result[arm] = merged
    return result


@dataclass(frozen=True)
class Key:
    """What an experiment's counts depend on: everything but the marks."""

    endpoint: str
    arms: tuple[ArmSpec, ...]
    started: int
    ended: int | None
    favourable: str
    positive: str
    attributes: tuple[Attribute, ...]
    auc: bool
    outcomes: bool


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    marks: Marks | None = None
    counts: Counts = field(default_factory=dict)
    tails: dict[str, list[float]] = field(default_factory=dict)  # arm -> slowest, longest first
    kept: dict[str, int] = field(default_factory=dict)  # arm -> how many the tail may hold


class Tallies:
    def __init__(self, entries: int = ENTRIES) -> None:
        self._kept: Kept[Key, _Entry] = Kept(_Entry, entries)

    def counts(
        self, connection: sa.Connection, key: Key, tail_sizes: Callable[[Counts], dict[str, int]]
    ) -> tuple[Counts, dict[str, list[float]], Marks]:
        """Every arm's counts up to the log's current marks (or the experiment's end); the
        slowest ``tail_sizes(counts)[arm]`` latencies of each arm that needs them, longest first;
        and the marks counted to."""
        entry = self._kept.entry(key)
        with entry.lock:
            now = read_marks(connection)
            if key.ended is not None and key.ended < now.seq:
                now = replace(now, seq=key.ended, record_hash=_hash_at(connection, key.ended))
            fresh = _stale(connection, entry.marks, now)
            entry.counts = _bring_up(connection, key, entry, now, fresh)
            sizes = tail_sizes(entry.counts)
            entry.tails = _tails(connection, key, entry, now, fresh, sizes)
            entry.marks = now
            tails = {arm: entry.tails[arm][: sizes[arm]] for arm in sizes}
            return entry.counts, tails, now


def _stale(connection: sa.Connection, was: Marks | None, now: Marks) -> bool:
    return (
        was is None
        or now.purged != was.purged
        or now.seq < was.seq
        or now.outcome < was.outcome
        or bool(was.seq and _hash_at(connection, was.seq) != was.record_hash)
    )


def _count(connection: sa.Connection, key: Key, span: Span) -> Counts:
    return query.counts(
        connection,
        key.endpoint,
        key.arms,
        key.started,
        span.upto,
        key.favourable,
        key.positive,
        key.attributes,
        auc=key.auc,
        outcomes=key.outcomes,
        span=span,
    )


def _bring_up(
    connection: sa.Connection, key: Key, entry: _Entry, now: Marks, fresh: bool
) -> Counts:
    was = entry.marks
    if fresh or was is None:
        return _count(connection, key, Span(upto=now.seq, outcomes_upto=now.outcome))
    counts = entry.counts
    if key.outcomes and now.outcome > was.outcome:
        old = Span(upto=was.seq, outcomes_upto=was.outcome, changed=(was.outcome, now.outcome))
        counts = combine(counts, _count(connection, key, old), -1)
        counts = combine(counts, _count(connection, key, replace(old, outcomes_upto=now.outcome)))
    if now.seq > was.seq:
        tail = Span(upto=now.seq, outcomes_upto=now.outcome, after=was.seq)
        counts = combine(counts, _count(connection, key, tail))
    return counts


def _tails(
    connection: sa.Connection,
    key: Key,
    entry: _Entry,
    now: Marks,
    fresh: bool,
    sizes: dict[str, int],
) -> dict[str, list[float]]:
    by_arm = {a.arm: a for a in key.arms}
    tails: dict[str, list[float]] = {}
    for arm, needed in sizes.items():
        spec, kept = by_arm[arm], entry.kept.get(arm, 0)
        was = entry.marks
        if fresh or was is None or arm not in entry.tails or needed > kept:
            kept = entry.kept[arm] = 2 * needed
            tails[arm] = query.slowest(connection, key.endpoint, spec, key.started, now.seq, kept)
            continue
        new = (
            query.slowest(connection, key.endpoint, spec, max(key.started, was.seq), now.seq, kept)
            if now.seq > was.seq
            else []
        )
        tails[arm] = heapq.nlargest(kept, [*entry.tails[arm], *new])
    return tails


def tail_sizes_of(
    arms: Sequence[ArmSpec], sizes: Callable[[ArmSpec, ArmCounts], int | None]
) -> Callable[[Counts], dict[str, int]]:
    """For ``Tallies.counts``: each arm's tail size from its counts (None: no tail needed)."""

    def of(counts: Counts) -> dict[str, int]:
        found = {a.arm: sizes(a, counts[a.arm]) for a in arms}
        return {arm: n for arm, n in found.items() if n is not None}

    return of


_BY_ENGINE: weakref.WeakKeyDictionary[sa.Engine, Tallies] = weakref.WeakKeyDictionary()


def tallies_of(engine: sa.Engine) -> Tallies:
    """The experiments' tallies of the database behind ``engine``."""
    return per_engine(_BY_ENGINE, engine, Tallies)
