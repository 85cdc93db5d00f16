"""An experiment's counts, as aggregate queries over the decision log (GROUP BY in the database).

Each arm's records: the champion's and each canary's are the endpoint's decisions on their route
(``live``, ``challenger-N``) by their model version; a shadow's are its shadow records whose live
decision the champion made (the same applicants, so the comparison is paired). All of them with
a seq in ``(started_seq, upto]``. An outcome is the decision's latest (for a shadow, its live
decision's: what happened to the applicant). Built with SQLAlchemy expressions and bound
parameters only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on

from explain.fairness.query import DECISIONS, OUTCOMES, Attribute, Span, bucket, raw_value

AUC_BINS = 1000  # score bins for the AUC: an error below 1/1000 of the AUC's range


@dataclass(frozen=True)
class ArmSpec:
    arm: str  # champion, challenger-1, ...
    model: str
    version: int
    mode: str  # champion, canary, shadow
    route: str | None  # live, challenger-N; None for a shadow


TOTALS = (
    "n",
    "selected",
    "known",
    "approved_known",
    "approved_defaulted",
    "denied_repaid",
    "outliers",
    "only_arm",
    "only_champion",
    "paired",
    "timed",
)


@dataclass
class ArmCounts:
    n: int = 0
    selected: int = 0
    known: int = 0
    approved_known: int = 0
    approved_defaulted: int = 0
    denied_repaid: int = 0
    outliers: int = 0
    only_arm: int = 0  # shadows: favourable here, not by the champion on the same applicant
    only_champion: int = 0
    paired: int = 0
    timed: int = 0  # decisions with their latency logged
    auc_positive: list[int] = field(default_factory=lambda: [0] * AUC_BINS)
    auc_negative: list[int] = field(default_factory=lambda: [0] * AUC_BINS)
    # attribute -> group -> (decisions, favourable, disagreements with the champion: shadows)
    groups: dict[str, dict[str, tuple[int, int, int]]] = field(default_factory=dict)


def _latest_outcome(decision_id: Any, outcomes_upto: int | None) -> Any:
    """The decision's latest outcome by an index probe on (decision_id, id): SQLite's way, and
    PostgreSQL's for a few records (a tally's tail, or the decisions a new outcome changed)."""
    latest = sa.select(OUTCOMES.c.outcome).where(OUTCOMES.c.decision_id == decision_id)
    if outcomes_upto is not None:
        latest = latest.where(OUTCOMES.c.id <= outcomes_upto)
    return latest.order_by(OUTCOMES.c.id.desc()).limit(1).scalar_subquery()


def _with_outcome(source: Any, decision_id: Any, latest: Any, span: Span | None) -> tuple[Any, Any]:
    """(the rows with their latest outcome, the outcome column): joined to ``latest`` (the
    latest outcome per decision, once per query: PostgreSQL), else by an index probe per row
    (SQLite), or none (``latest`` False: a metric that needs no outcome)."""
    if latest is False:
        return source, sa.null()
    if latest is None:
        return source, _latest_outcome(decision_id, span.outcomes_upto if span else None)
    return source.outerjoin(latest, latest.c.decision_id == decision_id), latest.c.outcome


def _latest_outcomes(dialect: str, outcomes: bool, span: Span | None) -> Any:
    if not outcomes:
        return False
    if dialect != "postgresql" or (span is not None and span.incremental):
        return None
    latest = (
        sa.select(OUTCOMES.c.decision_id, OUTCOMES.c.outcome)
        .ext(distinct_on(OUTCOMES.c.decision_id))
        .order_by(OUTCOMES.c.decision_id, OUTCOMES.c.id.desc())
    )
    if span is not None:
        latest = latest.where(OUTCOMES.c.id <= span.outcomes_upto)
    return latest.subquery("latest_outcome")


def _changed(span: Span | None) -> Any:
    """The decisions an outcome in ``span.changed`` (a range of outcome ids) concerns."""
    if span is None or span.changed is None:
        return None
    low, high = span.changed
    return sa.select(OUTCOMES.c.decision_id).where(OUTCOMES.c.id > low, OUTCOMES.c.id <= high)


def _rows(
    dialect: str,
    endpoint: str,
    arms: Sequence[ArmSpec],
    started: int,
    upto: int,
    attributes: Sequence[Attribute],
    outcomes: bool = True,
    span: Span | None = None,
) -> Any:
    """One row per record in an arm: its arm, label, score, outcome, out-of-distribution flag,
    groups and (for a shadow) the champion's label on the same applicant. With ``span``, only
    the records after ``span.after`` (a tally's tail) or those whose outcome changed, each with
    its latest outcome up to ``span.outcomes_upto``."""
    d = DECISIONS
    routed = [a for a in arms if a.route is not None]
    shadows = [a for a in arms if a.route is None]
    champion = next(a for a in arms if a.mode == "champion")
    latest = _latest_outcomes(dialect, outcomes, span)
    after = span.after if span is not None and span.after is not None else started
    if span is not None:
        upto = min(upto, span.upto)
    changed = _changed(span)
    parts = []
    if routed:
        arm = sa.case(
            *[
                (
                    (d.c.route == a.route) & (d.c.model == a.model) & (d.c.version == a.version),
                    a.arm,
                )
                for a in routed
            ],
            else_=None,
        )
        source, outcome = _with_outcome(d, d.c.decision_id, latest, span)
        routed_rows = (
            sa.select(
                arm.label("arm"),
                d.c.label.label("label"),
                d.c.score.label("score"),
                d.c.is_outlier.label("is_outlier"),
                d.c.latency_ms.label("latency_ms"),
                outcome.label("outcome"),
                sa.null().label("champion_label"),
                *[raw_value(dialect, a, d).label(f"g{i}") for i, a in enumerate(attributes)],
            )
            .select_from(source)
            .where(
                d.c.kind == "decision",
                d.c.endpoint == endpoint,
                d.c.seq > max(started, after),
                d.c.seq <= upto,
                d.c.route.in_([a.route for a in routed]),
            )
        )
        if changed is not None:
            routed_rows = routed_rows.where(d.c.decision_id.in_(changed))
        parts.append(routed_rows)
    if shadows:
        s, p = DECISIONS.alias("s"), DECISIONS.alias("p")
        arm = sa.case(
            *[((s.c.model == a.model) & (s.c.version == a.version), a.arm) for a in shadows],
            else_=None,
        )
        source, outcome = _with_outcome(
            s.join(p, p.c.decision_id == s.c.parent_decision_id), p.c.decision_id, latest, span
        )
        shadow_rows = (
            sa.select(
                arm.label("arm"),
                s.c.label.label("label"),
                s.c.score.label("score"),
                s.c.is_outlier.label("is_outlier"),
                sa.null().label("latency_ms"),  # a shadow never answers
                outcome.label("outcome"),
                p.c.label.label("champion_label"),
                *[raw_value(dialect, a, s).label(f"g{i}") for i, a in enumerate(attributes)],
            )
            .select_from(source)
            .where(
                s.c.kind == "shadow",
                s.c.endpoint == endpoint,
                s.c.seq > max(started, after),
                s.c.seq <= upto,
                p.c.seq > started,
                p.c.route == "live",
                p.c.model == champion.model,
                p.c.version == champion.version,
            )
        )
        if changed is not None:  # a shadow's outcome is its live decision's
            shadow_rows = shadow_rows.where(p.c.decision_id.in_(changed))
        parts.append(shadow_rows)
    rows = parts[0] if len(parts) == 1 else sa.union_all(*parts)
    return rows.cte("arm_rows")


def counts(
    connection: sa.Connection,
    endpoint: str,
    arms: Sequence[ArmSpec],
    started: int,
    upto: int,
    favourable: str,
    positive: str,
    attributes: Sequence[Attribute],
    auc: bool,
    outcomes: bool = True,
    span: Span | None = None,
) -> dict[str, ArmCounts]:
    """Every arm's counts, by group of each guardrail attribute: one aggregate query; and the
    score bins by outcome when the metric is the AUC."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        # A few aggregates over many rows: compiling them (JIT) cost half the query's time.
        connection.execute(sa.text("SET LOCAL jit = off"))
    rows = _rows(dialect, endpoint, arms, started, upto, attributes, outcomes, span)
    fav = rows.c.label == favourable
    known = rows.c.outcome.is_not(None)
    repaid = rows.c.outcome == favourable

    def count_if(condition: Any) -> Any:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    found = {a.arm: ArmCounts() for a in arms}
    # One pass: the counts by arm and by every guardrail attribute's group at once; an arm's
    # totals and each attribute's groups are sums of these rows.
    groups = [bucket(rows.c[f"g{i}"], a).label(f"g{i}") for i, a in enumerate(attributes)]
    main = sa.select(
        rows.c.arm,
        *groups,
        sa.func.count().label("n"),
        count_if(fav).label("selected"),
        count_if(known).label("known"),
        count_if(fav & known).label("approved_known"),
        count_if(fav & known & ~repaid).label("approved_defaulted"),
        count_if(~fav & repaid).label("denied_repaid"),
        count_if(rows.c.is_outlier.is_(True)).label("outliers"),
        count_if(fav & (rows.c.champion_label != favourable)).label("only_arm"),
        count_if(~fav & (rows.c.champion_label == favourable)).label("only_champion"),
        count_if(rows.c.champion_label.is_not(None)).label("paired"),
        count_if(rows.c.latency_ms.is_not(None)).label("timed"),
    ).group_by(rows.c.arm, *groups)
    for row in connection.execute(main):
        if row.arm is None:
            continue
        c = found[row.arm]
        for name in TOTALS:
            setattr(c, name, getattr(c, name) + int(getattr(row, name) or 0))
        for i, attribute in enumerate(attributes):
            table = c.groups.setdefault(attribute.name, {})
            key = str(row._mapping[f"g{i}"])
            n, k, apart = table.get(key, (0, 0, 0))
            disagree = int(row.only_arm or 0) + int(row.only_champion or 0)
            table[key] = (n + int(row.n), k + int(row.selected or 0), apart + disagree)
    if auc:
        raw_bin = sa.func.floor(sa.func.coalesce(rows.c.score, 0) * AUC_BINS)
        score_bin = sa.case((raw_bin >= AUC_BINS, AUC_BINS - 1), (raw_bin < 0, 0), else_=raw_bin)
        positive_outcome = rows.c.outcome == positive
        query = (
            sa.select(
                rows.c.arm,
                score_bin.label("bin"),
                count_if(positive_outcome).label("positive"),
                count_if(~positive_outcome).label("negative"),
            )
            .where(known)
            .group_by(rows.c.arm, score_bin)
        )
        for row in connection.execute(query):
            if row.arm is not None:
                c = found[row.arm]
                c.auc_positive[int(row.bin)] += int(row.positive or 0)
                c.auc_negative[int(row.bin)] += int(row.negative or 0)
    return found


def slowest(
    connection: sa.Connection, endpoint: str, arm: ArmSpec, started: int, upto: int, m: int
) -> list[float]:
    """The arm's ``m`` longest latencies, longest first: the tail a high quantile lies in (a
    top-N sort, bounded in memory, not a sort of the whole arm)."""
    d = DECISIONS
    query = (
        sa.select(d.c.latency_ms)
        .where(
            d.c.kind == "decision",
            d.c.endpoint == endpoint,
            d.c.seq > started,
            d.c.seq <= upto,
            d.c.route == arm.route,
            d.c.model == arm.model,
            d.c.version == arm.version,
            d.c.latency_ms.is_not(None),
        )
        .order_by(d.c.latency_ms.desc())
        .limit(m)
    )
    return [float(v) for v in connection.execute(query).scalars()]


def disagreements(
    connection: sa.Connection,
    endpoint: str,
    shadow: ArmSpec,
    champion: ArmSpec,
    started: int,
    upto: int,
    attributes: Sequence[Attribute],
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The latest applicants on whom the shadow and the champion decided differently: the live
    decision, the shadow's, both labels and the applicant's groups."""
    s, p = DECISIONS.alias("s"), DECISIONS.alias("p")
    dialect = connection.dialect.name
    query = (
        sa.select(
            p.c.decision_id.label("decision_id"),
            s.c.decision_id.label("shadow_decision_id"),
            p.c.label.label("champion_label"),
            s.c.label.label("shadow_label"),
            *[bucket(raw_value(dialect, a, s), a).label(f"g{i}") for i, a in enumerate(attributes)],
        )
        .select_from(s.join(p, p.c.decision_id == s.c.parent_decision_id))
        .where(
            s.c.kind == "shadow",
            s.c.endpoint == endpoint,
            s.c.model == shadow.model,
            s.c.version == shadow.version,
            s.c.seq > started,
            s.c.seq <= upto,
            p.c.seq > started,
            p.c.route == "live",
            p.c.model == champion.model,
            p.c.version == champion.version,
            s.c.label != p.c.label,
        )
        .order_by(s.c.seq.desc())
        .limit(limit)
    )
    return [
        {
            "decision_id": row.decision_id,
            "shadow_decision_id": row.shadow_decision_id,
            "champion_label": row.champion_label,
            "shadow_label": row.shadow_label,
            "group": {a.name: str(row._mapping[f"g{i}"]) for i, a in enumerate(attributes)},
        }
        for row in connection.execute(query)
    ]


def highest_seq(connection: sa.Connection) -> int:
    return int(connection.execute(sa.select(sa.func.max(DECISIONS.c.seq))).scalar() or 0)
