"""The fairness counts as one aggregate query over the decision log (GROUP BY in the database).

Groups come from the protected attributes: from the logged context, or, for an attribute that is
also a model feature (``"feature": true`` in the version's ``input_schema["protected"]``), from
the logged features; numeric ones are binned in SQL.
Everything is built with SQLAlchemy expressions and bound parameters; the two dialect
differences (reading a JSON number safely, truncating a timestamp to a period) are spelled once
each below.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on

from explain.fairness.stats import GroupCounts
from serving.models import DecisionOutcome, DecisionRecord

DECISIONS: sa.Table = DecisionRecord.__table__  # type: ignore[attr-defined]
OUTCOMES: sa.Table = DecisionOutcome.__table__  # type: ignore[attr-defined]
UNBINNED = "unbinned"
MISSING = "missing"


CONTEXT, FEATURES = "context", "features"


@dataclass(frozen=True)
class Attribute:
    name: str
    bins: tuple[float, ...] | None = None
    source: str = CONTEXT  # the decision's JSON column the value is read from


@dataclass(frozen=True)
class Span:
    """Which records and outcomes a count covers, by their place in the log: the records with
    ``after < seq <= upto`` and, for each, its latest outcome among those with ``id <=
    outcomes_upto``. With ``changed``, a range ``(low, high]`` of outcome ids, only the records
    that have an outcome in it (the ones those outcomes changed)."""

    upto: int
    outcomes_upto: int
    after: int | None = None
    changed: tuple[int, int] | None = None

    @property
    def incremental(self) -> bool:
        """A few records (the tail, or the ones with new outcomes): each outcome is looked up by
        index, not joined over the whole outcome table."""
        return self.after is not None or self.changed is not None


@dataclass(frozen=True)
class Filters:
    endpoint: str
    since: datetime | None = None
    until: datetime | None = None
    model: str | None = None
    version: int | None = None
    route: str | None = None


def bin_label(low: float, high: float) -> str:
    """The same labels training uses for metrics by group: "[18, 25)"."""
    return f"[{low:g}, {high:g})"


def json_number(dialect: str, column: Any, key: str) -> Any:
    """A JSON column's value at ``key`` as a float, or NULL when it is not a JSON number."""
    if dialect == "postgresql":
        is_number = sa.func.jsonb_typeof(column[key]) == "number"
    else:
        is_number = sa.func.json_type(column, f'$."{key}"').in_(["integer", "real"])
    return sa.case((is_number, column[key].as_float()), else_=None)


def raw_value(dialect: str, attribute: Attribute, table: Any = DECISIONS) -> Any:
    """The attribute read once per decision (from its context, or its features for a protected
    attribute that is a model feature): a number for a binned one, else its text. ``table``:
    the decision table or an alias of it."""
    column = table.c.features if attribute.source == FEATURES else table.c.context
    if attribute.bins:
        return json_number(dialect, column, attribute.name)
    return sa.func.coalesce(column[attribute.name].as_string(), MISSING)


def bucket(value: Any, attribute: Attribute) -> Any:
    """The group label: the bin a number falls in ("[18, 25)"), else the text itself."""
    if not attribute.bins:
        return value
    edges = attribute.bins
    return sa.case(
        *[
            ((value >= low) & (value < high), bin_label(low, high))
            for low, high in itertools.pairwise(edges)
        ],
        else_=UNBINNED,
    )


def period_expression(dialect: str, window: str) -> Any:
    """The first day of the decision's UTC day, ISO week (Monday) or month, as YYYY-MM-DD."""
    created = DECISIONS.c.created_at
    if dialect == "postgresql":
        return sa.func.to_char(
            sa.func.date_trunc(window, sa.func.timezone("UTC", created)), "YYYY-MM-DD"
        )
    if window == "day":
        return sa.func.strftime("%Y-%m-%d", created)
    if window == "week":
        return sa.func.date(created, "weekday 0", "-6 days")
    return sa.func.strftime("%Y-%m-01", created)


def _latest_outcome_join(span: Span | None) -> Any:
    """PostgreSQL: the latest outcome per decision (DISTINCT ON over the (decision_id, id)
    index), hash-joined to the decisions."""
    latest = (
        sa.select(OUTCOMES.c.decision_id, OUTCOMES.c.outcome)
        .ext(distinct_on(OUTCOMES.c.decision_id))
        .order_by(OUTCOMES.c.decision_id, OUTCOMES.c.id.desc())
    )
    if span is not None:
        latest = latest.where(OUTCOMES.c.id <= span.outcomes_upto)
    return latest.subquery("latest_outcome")


def _latest_outcome_lookup(span: Span | None) -> Any:
    """The latest outcome by an index probe per decision: on SQLite always (it would otherwise
    nest loops over an unindexed join), and for a few records on PostgreSQL."""
    latest = sa.select(OUTCOMES.c.outcome).where(OUTCOMES.c.decision_id == DECISIONS.c.decision_id)
    if span is not None:
        latest = latest.where(OUTCOMES.c.id <= span.outcomes_upto)
    return latest.order_by(OUTCOMES.c.id.desc()).limit(1).scalar_subquery()


def _within(rows: Any, span: Span) -> Any:
    rows = rows.where(DECISIONS.c.seq <= span.upto)
    if span.after is not None:
        rows = rows.where(DECISIONS.c.seq > span.after)
    if span.changed is not None:
        low, high = span.changed
        changed = sa.select(OUTCOMES.c.decision_id).where(
            OUTCOMES.c.id > low, OUTCOMES.c.id <= high
        )
        rows = rows.where(DECISIONS.c.decision_id.in_(changed))
    return rows


def counts_query(
    dialect: str,
    filters: Filters,
    attributes: Sequence[Attribute],
    favourable: str,
    window: str | None,
    span: Span | None = None,
    only: Any = None,
) -> Any:
    keys: list[Any] = [raw_value(dialect, a).label(f"g{i}") for i, a in enumerate(attributes)]
    if window:
        keys.append(period_expression(dialect, window).label("period"))
    if dialect == "postgresql" and not (span is not None and span.incremental):
        joined = _latest_outcome_join(span)
        source: Any = DECISIONS.outerjoin(joined, joined.c.decision_id == DECISIONS.c.decision_id)
        outcome_value: Any = joined.c.outcome
    else:
        source, outcome_value = DECISIONS, _latest_outcome_lookup(span)
    rows = (
        sa.select(*keys, DECISIONS.c.label.label("label"), outcome_value.label("outcome"))
        .select_from(source)
        .where(DECISIONS.c.kind == "decision", DECISIONS.c.endpoint == filters.endpoint)
    )
    if filters.since is not None:
        rows = rows.where(DECISIONS.c.created_at >= filters.since)
    if filters.until is not None:
        rows = rows.where(DECISIONS.c.created_at < filters.until)
    if filters.model is not None:
        rows = rows.where(DECISIONS.c.model == filters.model)
    if filters.version is not None:
        rows = rows.where(DECISIONS.c.version == filters.version)
    if filters.route is not None:
        rows = rows.where(DECISIONS.c.route == filters.route)
    if span is not None:
        rows = _within(rows, span)
    if only is not None:
        rows = rows.where(DECISIONS.c.decision_id.in_(only))
    scoped = rows.cte("scoped")
    if dialect != "postgresql":
        # Materialised once, so the per-row outcome lookup is not repeated for every aggregate.
        scoped = scoped.prefix_with("MATERIALIZED")
    favourable_decision = scoped.c.label == favourable
    known = scoped.c.outcome.is_not(None)
    favourable_outcome = scoped.c.outcome == favourable

    def count_if(condition: Any) -> Any:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    group_keys = [bucket(scoped.c[f"g{i}"], a).label(f"g{i}") for i, a in enumerate(attributes)]
    if window:
        group_keys.append(scoped.c.period)
    return sa.select(
        *group_keys,
        sa.func.count().label("n"),
        count_if(favourable_decision).label("selected"),
        count_if(known).label("with_outcome"),
        count_if(favourable_outcome).label("actual_favourable"),
        count_if(favourable_outcome & favourable_decision).label("true_positives"),
        count_if(known & ~favourable_outcome & favourable_decision).label("false_positives"),
    ).group_by(*group_keys)


# The appeal cases a person decided (governance.casework), named here without importing it.
_CASES = sa.table(
    "appeal_case", sa.column("decision_id"), sa.column("outcome"), sa.column("human_label")
)
OVERTURNED = sa.select(_CASES.c.decision_id).where(_CASES.c.outcome == "overturned")


def overturned_to(label: str) -> Any:
    """The decisions a person overturned to ``label``."""
    return OVERTURNED.where(_CASES.c.human_label == str(label))


def totals(periods: dict[str | None, list[GroupCounts]]) -> list[GroupCounts]:
    """Counts add up: the whole window is the sum of its periods, group by group."""
    merged: dict[tuple[str, ...], GroupCounts] = {}
    for groups in periods.values():
        for g in groups:
            m = merged.get(g.key)
            merged[g.key] = (
                g
                if m is None
                else GroupCounts(
                    key=g.key,
                    n=m.n + g.n,
                    selected=m.selected + g.selected,
                    with_outcome=m.with_outcome + g.with_outcome,
                    actual_favourable=m.actual_favourable + g.actual_favourable,
                    true_positives=m.true_positives + g.true_positives,
                    false_positives=m.false_positives + g.false_positives,
                )
            )
    return [merged[key] for key in sorted(merged)]


def run_counts(
    connection: sa.Connection,
    filters: Filters,
    attributes: Sequence[Attribute],
    favourable: str,
    window: str | None,
    span: Span | None = None,
    only: Any = None,
) -> dict[str | None, list[GroupCounts]]:
    """Counts by group, keyed by period (None without a window); with ``only`` (a subquery of
    decision ids), of those decisions alone."""
    query = counts_query(
        connection.dialect.name, filters, attributes, favourable, window, span, only
    )
    result: dict[str | None, list[GroupCounts]] = {}
    for row in connection.execute(query):
        mapping = row._mapping
        key = tuple(_label(mapping[f"g{i}"]) for i in range(len(attributes)))
        period = str(mapping["period"]) if window else None
        result.setdefault(period, []).append(
            GroupCounts(
                key=key,
                n=int(mapping["n"]),
                selected=int(mapping["selected"] or 0),
                with_outcome=int(mapping["with_outcome"] or 0),
                actual_favourable=int(mapping["actual_favourable"] or 0),
                true_positives=int(mapping["true_positives"] or 0),
                false_positives=int(mapping["false_positives"] or 0),
            )
        )
    for groups in result.values():
        groups.sort(key=lambda g: g.key)
    return dict(sorted(result.items(), key=lambda item: item[0] or ""))


def _label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
