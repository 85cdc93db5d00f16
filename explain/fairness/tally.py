"""Fairness counts kept up to date, not counted again from the start on every report.

The log only grows: a decision never changes once written, and an outcome is a new row. So the
counts of a report (by group and period) as of one point in the log, plus the counts of what came
after, are the counts now. A tally holds, per report (endpoint, filters, attributes with their
bins, favourable label, period), the counts over

- the records with ``seq <= marks.seq`` (seq is handed out under the chain head's lock, so every
  record at or below the highest seq is committed), and
- for each, its latest outcome among those with ``id <= marks.outcome`` (a settled mark: see
  ``serving.outcomes.settled_mark``).

Bringing a tally up to date counts only the new records, and the records whose latest outcome a
new outcome changed (their old contribution is taken away and the new one added). Two changes
make it count again from the start: a retention purge (it erases the context the groups come
from) and a log that is not the one counted (the record at ``marks.seq`` has another hash: a
restored or replaced database).

Each engine has its own tallies, at most ``ENTRIES`` reports (the least recently used goes), so a
caller's choices of bins and dates cannot grow memory without bound. A report says the marks it
counts to, so every figure traces back to a place in the chain.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

import sqlalchemy as sa

from explain.fairness.query import DECISIONS, Attribute, Filters, Span, run_counts
from explain.fairness.stats import GroupCounts
from serving.outcomes import settled_mark

ENTRIES = 128

K = TypeVar("K", bound=Hashable)
E = TypeVar("E")
T = TypeVar("T")

Periods = dict[str | None, list[GroupCounts]]


@dataclass(frozen=True)
class Marks:
    seq: int  # records with seq at or below are counted
    record_hash: str | None  # the hash of the record at ``seq``: the same log, or not
    outcome: int  # outcomes with id at or below are counted
    purged: int  # the highest purged seq when counted: a purge since means counting again

    def public(self) -> dict[str, int]:
        return {"seq": self.seq, "outcome_id": self.outcome}


def read_marks(connection: sa.Connection) -> Marks:
    seq, record_hash = connection.execute(
        sa.select(DECISIONS.c.seq, DECISIONS.c.record_hash)
        .order_by(DECISIONS.c.seq.desc())
        .limit(1)
    ).one_or_none() or (0, None)
    purged = connection.execute(
        sa.select(sa.func.coalesce(sa.func.max(DECISIONS.c.seq), 0)).where(
            DECISIONS.c.payload.is_(None)
        )
    ).scalar_one()
    return Marks(
        seq=int(seq),
        record_hash=record_hash,
        outcome=settled_mark(connection),
        purged=int(purged),
    )


def _hash_at(connection: sa.Connection, seq: int) -> str | None:
    return connection.execute(
        sa.select(DECISIONS.c.record_hash).where(DECISIONS.c.seq == seq)
    ).scalar_one_or_none()


def _add(a: GroupCounts, b: GroupCounts, sign: int) -> GroupCounts:
    return GroupCounts(
        key=a.key,
        n=a.n + sign * b.n,
        selected=a.selected + sign * b.selected,
        with_outcome=a.with_outcome + sign * b.with_outcome,
        actual_favourable=a.actual_favourable + sign * b.actual_favourable,
        true_positives=a.true_positives + sign * b.true_positives,
        false_positives=a.false_positives + sign * b.false_positives,
    )


def combine(base: Periods, change: Periods, sign: int = 1) -> Periods:
    """``base`` plus (or minus) ``change``, group by group within each period; groups left with
    no decision are dropped. Sorted as ``run_counts`` sorts."""
    merged: dict[str | None, dict[tuple[str, ...], GroupCounts]] = {
        period: {g.key: g for g in groups} for period, groups in base.items()
    }
    for period, groups in change.items():
        into = merged.setdefault(period, {})
        for g in groups:
            have = into.get(g.key)
            if have is not None:
                into[g.key] = _add(have, g, sign)
            elif sign > 0:
                into[g.key] = g
            else:  # taking away what was never counted: the tally is wrong, not the log
                raise ValueError(f"group {g.key} in period {period} was not counted")
    result: Periods = {}
    for period, by_key in sorted(merged.items(), key=lambda item: item[0] or ""):
        kept = [by_key[key] for key in sorted(by_key) if by_key[key].n > 0]
        if kept:
            result[period] = kept
    return result


@dataclass(frozen=True)
class Report:
    """What a report counts: everything but the marks."""

    filters: Filters
    attributes: tuple[Attribute, ...]
    favourable: str
    window: str | None


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    marks: Marks | None = None
    periods: Periods = field(default_factory=dict)


class Kept(Generic[K, E]):
    """At most ``limit`` entries by key, the least recently used going first: a caller's
    choices (bins, dates, experiments) cannot grow memory without bound."""

    def __init__(self, make: Callable[[], E], limit: int) -> None:
        self._entries: OrderedDict[K, E] = OrderedDict()
        self._make = make
        self._limit = limit
        self._lock = threading.Lock()

    def entry(self, key: K) -> E:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                found = self._entries[key] = self._make()
                while len(self._entries) > self._limit:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
            return found

    def entries(self) -> list[E]:
        with self._lock:
            return list(self._entries.values())

    def keys_by_use(self) -> list[K]:
        """Least recently used first."""
        with self._lock:
            return list(self._entries)


def per_engine(
    registry: weakref.WeakKeyDictionary[sa.Engine, T], engine: sa.Engine, make: Callable[[], T]
) -> T:
    """The one ``make()`` of the database behind ``engine`` in ``registry`` (gone with it)."""
    with _BY_ENGINE_LOCK:
        found = registry.get(engine)
        if found is None:
            found = registry[engine] = make()
        return found


class Tallies:
    """The tallies of one database, least recently used first."""

    def __init__(self, entries: int = ENTRIES) -> None:
        self._kept: Kept[Report, _Entry] = Kept(_Entry, entries)

    def counts(
        self,
        connection: sa.Connection,
        filters: Filters,
        attributes: Sequence[Attribute],
        favourable: str,
        window: str | None,
    ) -> tuple[Periods, Marks]:
        """The counts by period and group up to the log's current marks, and those marks."""
        report = Report(filters, tuple(attributes), favourable, window)
        entry = self._kept.entry(report)
        with entry.lock:
            now = read_marks(connection)
            entry.periods = self._bring_up(connection, report, entry, now)
            entry.marks = now
            return entry.periods, now

    @staticmethod
    def _bring_up(connection: sa.Connection, report: Report, entry: _Entry, now: Marks) -> Periods:
        def count(span: Span) -> Periods:
            return run_counts(
                connection,
                report.filters,
                report.attributes,
                report.favourable,
                report.window,
                span,
            )

        was = entry.marks
        if (
            was is None
            or now.purged != was.purged
            or now.seq < was.seq
            or now.outcome < was.outcome
            or (was.seq and _hash_at(connection, was.seq) != was.record_hash)
        ):
            return count(Span(upto=now.seq, outcomes_upto=now.outcome))
        periods = entry.periods
        if now.outcome > was.outcome:
            changed = (was.outcome, now.outcome)
            old = Span(upto=was.seq, outcomes_upto=was.outcome, changed=changed)
            periods = combine(periods, count(old), -1)
            periods = combine(periods, count(replace(old, outcomes_upto=now.outcome)))
        if now.seq > was.seq:
            tail = Span(upto=now.seq, outcomes_upto=now.outcome, after=was.seq)
            periods = combine(periods, count(tail))
        return periods


_BY_ENGINE: weakref.WeakKeyDictionary[sa.Engine, Tallies] = weakref.WeakKeyDictionary()
_BY_ENGINE_LOCK = threading.Lock()


def tallies_of(engine: sa.Engine) -> Tallies:
    """The tallies of the database behind ``engine`` (one per engine, gone with it)."""
    return per_engine(_BY_ENGINE, engine, Tallies)
