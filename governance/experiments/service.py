"""Experiments: declared on an endpoint (which routes the arms), reported from the decision log
and its outcomes, decided by their stopping rule, ended by a person. Every change is a record in
the ``governance`` chain; every read is in the access trail."""

from __future__ import annotations

import math
import time
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.audit import access
from core.auth.models import Role
from core.auth.schemas import Principal
from core.config import Settings
from core.errors import Conflict, InvalidInput, NotFound
from core.pagination import Page
from explain.fairness import service as fairness_service
from explain.fairness import stats as fairness
from explain.fairness.query import Attribute
from governance.changes import events
from governance.experiments import query, schemas, stats, tally
from governance.experiments.models import Experiment, ExperimentVersion
from governance.experiments.schemas import ExperimentChange, ExperimentIn
from lineage import registry
from lineage.input_schema import InputSchema
from lineage.models import ModelVersion
from serving import endpoints
from serving.models import DecisionRecord, EndpointConfig
from serving.schemas import EndpointConfigDocument, EndpointConfigIn, RouteSpec, ShadowSpec

KIND = "experiment"
RUNNING, ENDED = "running", "ended"
BASELINE_ROWS = 10_000  # the champion's recent decisions that give the default baseline
SEES_GROUPS = (Role.compliance, Role.admin)


def _versions(session: Session, body: ExperimentIn) -> list[tuple[str, ModelVersion]]:
    found = []
    arms = [
        ("champion", body.champion),
        *((f"challengers.{i}", c) for i, c in enumerate(body.challengers)),
    ]
    for where, arm in arms:
        try:
            _m, version = registry.get_version(session=session, name=arm.model, version=arm.version)
        except NotFound as exc:
            raise InvalidInput.at(where, exc.message) from None
        found.append((arm.model, version))
    return found


def _arm_specs(config: dict[str, Any]) -> list[query.ArmSpec]:
    champion = config["champion"]
    arms = [query.ArmSpec("champion", champion["model"], champion["version"], "champion", "live")]
    for i, c in enumerate(config["challengers"], start=1):
        route = f"challenger-{i}" if c["mode"] == "canary" else None
        arms.append(query.ArmSpec(f"challenger-{i}", c["model"], c["version"], c["mode"], route))
    return arms


def _routing(session: Session, body: ExperimentIn) -> tuple[EndpointConfigIn, int | None]:
    """The endpoint's configuration for the experiment: the champion live, each canary on its
    route, sticky by subject; the endpoint's other shadows and public context kept."""
    before = endpoints.config_row(session, body.endpoint)
    assert before is not None  # an endpoint is created with its first configuration
    current = EndpointConfigDocument.of(before.config)
    canaries = [c for c in body.challengers if c.mode == "canary"]
    share = sum(c.weight or 0.0 for c in canaries)
    routes = [
        RouteSpec(
            model=body.champion.model, version=body.champion.version, weight=1 - share, name="live"
        )
    ]
    for i, c in enumerate(body.challengers, start=1):
        if c.mode == "canary":
            routes.append(
                RouteSpec(
                    model=c.model, version=c.version, weight=c.weight or 0.0, name=f"challenger-{i}"
                )
            )
    ours = {(c.model, c.version) for c in body.challengers if c.mode == "shadow"}
    shadows = [ShadowSpec(model=m, version=v) for m, v in sorted(ours)]
    shadows += [
        ShadowSpec(model=s.model, version=s.version)
        for s in current.shadows
        if (s.model, s.version) not in ours
    ]
    if len(shadows) > 5:
        raise InvalidInput.at("challengers", "the endpoint would have more than 5 shadows")
    config = EndpointConfigIn(
        routes=routes, shadows=shadows, sticky=True, public_context=list(current.public_context)
    )
    return config, before.id


def _baseline(session: Session, body: ExperimentIn, favourable: str) -> float:
    """The champion's approval rate over its last decisions on the endpoint (0.5 without)."""
    recent = (
        select(DecisionRecord.label)
        .where(
            DecisionRecord.kind == "decision",
            DecisionRecord.endpoint == body.endpoint,
            DecisionRecord.model == body.champion.model,
            DecisionRecord.version == body.champion.version,
        )
        .order_by(col(DecisionRecord.seq).desc())
        .limit(BASELINE_ROWS)
        .subquery()
    )
    n, selected = session.execute(
        sa.select(
            sa.func.count(), sa.func.sum(sa.case((recent.c.label == favourable, 1), else_=0))
        ).select_from(recent)
    ).one()
    return float(selected) / n if n and selected else 0.5


def _plan(session: Session, body: ExperimentIn, favourable: str) -> dict[str, Any]:
    stop, metric = body.stopping, body.metric
    if metric.kind in ("auc", "expected_loss"):
        if stop.max_per_arm is None:
            raise InvalidInput.at(
                "stopping.max_per_arm",
                f"is required for {metric.kind}: its planned sample does not follow from the mde "
                "alone",
            )
        planned = stop.max_per_arm
        baseline = None
    else:
        baseline = (
            stop.baseline if stop.baseline is not None else _baseline(session, body, favourable)
        )
        if metric.mde >= min(baseline, 1 - baseline) * 2:
            raise InvalidInput.at(
                "metric.mde", f"is too large for a baseline rate of {baseline:.3g}"
            )
        planned = stats.planned_per_arm(baseline, metric.mde, stop.alpha, stop.power)
    last = stop.max_per_arm or (planned if stop.kind == "fixed_horizon" else 2 * planned)
    return {"baseline": baseline, "planned_per_arm": planned, "last_look_per_arm": last}


def create(session: Session, body: ExperimentIn, principal: Principal, now: datetime) -> Experiment:
    versions = _versions(session, body)
    favourable = fairness_service._favourable(versions)
    if body.guardrails.attributes:
        fairness_service._attributes(versions, body.guardrails.attributes, {})
    running = session.exec(
        select(Experiment).where(Experiment.endpoint == body.endpoint, Experiment.status == RUNNING)
    ).first()
    if running is not None:
        raise Conflict(
            f"experiment {running.experiment_id} is running on {body.endpoint}: end it first"
        )
    plan = _plan(session, body, favourable)
    routing_in, before = _routing(session, body)
    endpoints.put_endpoint(
        session=session, name=body.endpoint, config_in=routing_in, actor=principal.key_id
    )
    applied = endpoints.config_row(session, body.endpoint)
    assert applied is not None
    config = {**body.model_dump(mode="json"), "plan": plan, "favourable_label": favourable}
    experiment = Experiment(
        experiment_id=str(uuid.uuid4()),
        name=body.name,
        endpoint=body.endpoint,
        status=RUNNING,
        version=1,
        config=config,
        created_at=now,
        created_by=principal.key_id,
        started_seq=query.highest_seq(session.connection()),
        routing_before=before,
        routing=int(applied.id or 0),
    )
    try:
        with session.begin_nested():
            session.add(experiment)
    except IntegrityError:
        raise Conflict(f"another experiment is running on {body.endpoint}: end it first") from None
    session.add(
        ExperimentVersion(
            experiment_id=experiment.experiment_id,
            version=1,
            config=config,
            created_at=now,
            created_by=principal.key_id,
        )
    )
    events.record(
        session,
        principal,
        "experiment.declared",
        kind=KIND,
        subject=experiment.experiment_id,
        at=now,
        detail={
            "config": config,
            "routing": {"before": before, "applied": experiment.routing},
            "started_seq": experiment.started_seq,
        },
    )
    access.record(session, principal, "experiment.create", target=experiment.experiment_id)
    return experiment


def get(session: Session, experiment_id: str) -> Experiment:
    found = session.exec(
        select(Experiment).where(Experiment.experiment_id == experiment_id)
    ).first()
    if found is None:
        raise NotFound(f"no experiment {experiment_id}")
    return found


def change(
    session: Session,
    experiment_id: str,
    body: ExperimentChange,
    principal: Principal,
    now: datetime,
) -> Experiment:
    """A new version of the configuration: the guardrails or the name (never the arms, metric or
    stopping rule, which would void the test)."""
    experiment = get(session, experiment_id)
    if experiment.status != RUNNING:
        raise Conflict("the experiment has ended: it no longer changes")
    config = dict(experiment.config)
    changed = body.model_dump(mode="json", exclude_none=True)
    if not changed:
        raise InvalidInput.at("body", "give the name or the guardrails to change")
    if body.guardrails is not None and body.guardrails.attributes:
        versions = _versions(
            session,
            ExperimentIn.model_validate(
                {k: v for k, v in config.items() if k in ExperimentIn.model_fields}
            ),
        )
        fairness_service._attributes(versions, body.guardrails.attributes, {})
    config.update(changed)
    if body.name is not None:
        experiment.name = body.name
    return _new_version(
        session, experiment, config, principal, now, "experiment.changed", {"changed": changed}
    )


def _new_version(
    session: Session,
    experiment: Experiment,
    config: dict[str, Any],
    principal: Principal,
    now: datetime,
    event: str,
    detail: dict[str, Any],
) -> Experiment:
    """The configuration's next version: the row, its copy in ``experiment_version``, and the
    change in the governance chain."""
    experiment.version += 1
    experiment.config = config
    session.add(experiment)
    session.add(
        ExperimentVersion(
            experiment_id=experiment.experiment_id,
            version=experiment.version,
            config=config,
            created_at=now,
            created_by=principal.key_id,
        )
    )
    events.record(
        session,
        principal,
        event,
        kind=KIND,
        subject=experiment.experiment_id,
        at=now,
        detail={"version": experiment.version, **detail},
    )
    return experiment


def reweight(
    session: Session, experiment_id: str, weight: float, principal: Principal, now: datetime
) -> Experiment:
    """A roll-out's step: the one canary's share of the traffic, as a new version of the
    configuration and of the endpoint's routing."""
    experiment = get(session, experiment_id)
    if experiment.status != RUNNING:
        raise Conflict("the experiment has ended: it no longer changes")
    config = dict(experiment.config)
    [canary] = [c for c in config["challengers"] if c["mode"] == "canary"]
    config["challengers"] = [
        {**c, "weight": weight} if c is canary else c for c in config["challengers"]
    ]
    body = ExperimentIn.model_validate(
        {k: v for k, v in config.items() if k in ExperimentIn.model_fields}
    )
    routing_in, _before = _routing(session, body)
    endpoints.put_endpoint(
        session=session, name=experiment.endpoint, config_in=routing_in, actor=principal.key_id
    )
    return _new_version(
        session,
        experiment,
        config,
        principal,
        now,
        "experiment.reweighted",
        {"canary_weight": weight},
    )


def end(
    session: Session,
    experiment_id: str,
    reason: str,
    restore: bool,
    principal: Principal,
    now: datetime,
) -> Experiment:
    """Stop counting; with ``restore``, give the endpoint back the configuration it had before."""
    experiment = get(session, experiment_id)
    if experiment.status != RUNNING:
        raise Conflict("the experiment has ended already")
    restored = None
    if restore and experiment.routing_before is not None:
        before = session.get(EndpointConfig, experiment.routing_before)
        assert before is not None
        document = EndpointConfigIn.model_validate(
            {k: v for k, v in before.config.items() if k in EndpointConfigIn.model_fields}
        )
        endpoints.put_endpoint(
            session=session, name=experiment.endpoint, config_in=document, actor=principal.key_id
        )
        restored = experiment.routing_before
    experiment.status, experiment.ended_at, experiment.ended_by = ENDED, now, principal.key_id
    experiment.ended_seq = query.highest_seq(session.connection())
    session.add(experiment)
    events.record(
        session,
        principal,
        "experiment.ended",
        kind=KIND,
        subject=experiment_id,
        at=now,
        detail={
            "reason": reason,
            "ended_seq": experiment.ended_seq,
            "routing_restored_to": restored,
        },
    )
    return experiment


def history(session: Session, experiment_id: str, principal: Principal) -> dict[str, Any]:
    """Every version of the configuration, and every change from the governance chain."""
    experiment = get(session, experiment_id)
    versions = session.exec(
        select(ExperimentVersion)
        .where(ExperimentVersion.experiment_id == experiment.experiment_id)
        .order_by(col(ExperimentVersion.version))
    ).all()
    access.record(session, principal, "experiment.history", target=experiment_id)
    return {
        "versions": [
            {
                "version": v.version,
                "config": v.config,
                "created_at": v.created_at,
                "created_by": v.created_by,
            }
            for v in versions
        ],
        "changes": events.steps(session, KIND, experiment.experiment_id),
    }


def listing(
    session: Session, principal: Principal, page: Page, endpoint: str | None
) -> list[Experiment]:
    q = select(Experiment).order_by(col(Experiment.id).desc()).limit(page.limit)
    if page.cursor is not None:
        q = q.where(col(Experiment.id) < page.cursor)
    if endpoint is not None:
        q = q.where(Experiment.endpoint == endpoint)
    rows = list(session.exec(q).all())
    access.record(
        session, principal, "experiment.list", params={"endpoint": endpoint}, rows=len(rows)
    )
    return rows


# The report -----------------------------------------------------------------------------------


def _estimate(kind: str, c: query.ArmCounts, costs: dict[str, float] | None) -> stats.Estimate:
    if kind == "approval_rate":
        return stats.proportion(c.selected, c.n)
    if kind == "default_rate":
        return stats.proportion(c.approved_defaulted, c.approved_known)
    if kind == "auc":
        return stats.auc_from_bins(c.auc_positive, c.auc_negative)
    assert costs is not None
    a, b = costs["approved_and_defaulted"], costs["denied_and_would_repay"]
    total = a * c.approved_defaulted + b * c.denied_repaid
    squares = a * a * c.approved_defaulted + b * b * c.denied_repaid
    return stats.mean_of(total, squares, c.known)


def _metric_entry(e: stats.Estimate, alpha: float) -> dict[str, Any]:
    interval = e.interval(alpha)
    return {
        "value": e.value,
        "ci": list(interval) if interval else None,
        "n": e.n,
        "standard_error": math.sqrt(e.variance) if e.variance is not None else None,
    }


def _p99(arm: query.ArmSpec, c: query.ArmCounts, limit: float, tail: list[float]) -> dict[str, Any]:
    """The 99th percentile of the arm's latencies with its distribution-free 95% interval:
    breached when the whole interval is above the limit, holds when it is all at or below."""
    entry: dict[str, Any] = {"limit": limit, "value": None, "ci95": None}
    if arm.mode == "shadow":
        return {**entry, "state": "not_assessable", "reason": "a shadow never answers: no latency"}
    ranks = stats.quantile_ranks(c.timed)
    if ranks is None:
        return {
            **entry,
            "state": "not_assessable",
            "reason": f"{c.timed} decisions with their latency cannot bound a 99th percentile",
        }
    low, point, high = (tail[c.timed - r] for r in ranks)  # tail: the longest first
    state = "breached" if low > limit else "holds" if high <= limit else "not_assessable"
    return {**entry, "value": point, "ci95": [low, high], "state": state}


def _guardrails(
    arm: query.ArmSpec,
    c: query.ArmCounts,
    rails: dict[str, Any],
    min_group_size: int,
    with_groups: bool,
    tail: list[float],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One arm's guardrails: each is ``holds``, ``breached`` or ``not_assessable``, by the same
    honest rules as the fairness report (a breach is a significant one)."""
    report: dict[str, Any] = {}
    breaches = []
    for name, table in sorted(c.groups.items()):
        groups = [
            fairness.GroupCounts(key=(g,), n=n, selected=k)
            for g, (n, k, _apart) in sorted(table.items())
        ]
        compared = fairness.compare(groups, [name], min_group_size)
        ratio = compared["disparate_impact_ratio_min"]
        verdict = compared["four_fifths_verdict"]
        state = {"holds": "holds", "violated": "breached"}.get(verdict, "not_assessable")
        entry: dict[str, Any] = {
            "state": state,
            "disparate_impact_ratio_min": ratio,
            "disparate_impact_ratio_min_ci95": compared["disparate_impact_ratio_min_ci95"],
            "rule": "four-fifths: breached only when a ratio below 0.8 is significant",
            "reasons": compared["verdict_reasons"],
        }
        if with_groups:
            entry["groups"] = [
                {
                    "group": g["group"][name],
                    "n": g["n"],
                    "approval_rate": g["selection_rate"],
                    "approval_rate_ci95": g["selection_rate_ci95"],
                    "below_minimum_size": g["below_minimum_size"],
                }
                for g in compared["groups"]
            ]
        report[f"disparate_impact:{name}"] = entry
        if state == "breached":
            breaches.append(
                {
                    "arm": arm.arm,
                    "guardrail": f"disparate_impact:{name}",
                    "value": ratio,
                    "limit": fairness.FOUR_FIFTHS,
                }
            )
    limit = rails.get("max_ood_rate")
    interval = fairness.wilson(c.outliers, c.n) if c.n else None
    ood: dict[str, Any] = {
        "rate": c.outliers / c.n if c.n else None,
        "ci95": list(interval) if interval else None,
        "limit": limit,
    }
    if limit is None:
        ood["state"] = "not_declared"
    elif interval is None or c.n < stats.MIN_PER_ARM:
        ood["state"] = "not_assessable"
    elif interval[0] > limit:
        ood["state"] = "breached"
        breaches.append(
            {"arm": arm.arm, "guardrail": "ood_rate", "value": ood["rate"], "limit": limit}
        )
    else:
        ood["state"] = "holds" if interval[1] <= limit else "not_assessable"
    report["ood_rate"] = ood
    if rails.get("max_p99_latency_ms") is not None:
        p99 = _p99(arm, c, float(rails["max_p99_latency_ms"]), tail)
        report["p99_latency_ms"] = p99
        if p99["state"] == "breached":
            breaches.append(
                {
                    "arm": arm.arm,
                    "guardrail": "p99_latency_ms",
                    "value": p99["value"],
                    "limit": p99["limit"],
                }
            )
    return report, breaches


EXAMPLES_PER_GROUP = 3


def _disagreements_by_group(
    connection: Any,
    experiment: Experiment,
    arm: query.ArmSpec,
    champion: query.ArmSpec,
    first: int,
    upto: int,
    attributes: list[Attribute],
    c: query.ArmCounts,
) -> dict[str, Any]:
    """Compliance: how often the shadow and the champion disagree in each group, and the latest
    disagreements in each (at most three per group)."""
    by_group = [
        {
            "attribute": name,
            "group": group,
            "paired_decisions": n,
            "disagreements": apart,
            "disagreement_rate": apart / n if n else None,
        }
        for name, table in sorted(c.groups.items())
        for group, (n, _k, apart) in sorted(table.items())
    ]
    latest = query.disagreements(
        connection,
        experiment.endpoint,
        arm,
        champion,
        first,
        upto,
        attributes,
    )
    examples: list[dict[str, Any]] = []
    shown: dict[tuple[str, str], int] = {}
    for found in latest:
        keys = [(name, value) for name, value in found["group"].items()] or [("", "")]
        if all(shown.get(k, 0) >= EXAMPLES_PER_GROUP for k in keys):
            continue
        for k in keys:
            shown[k] = shown.get(k, 0) + 1
        examples.append(found)
    return {"by_group": by_group, "examples": examples}


def _overall(tests: list[dict[str, Any]], srm: dict[str, Any]) -> tuple[str, str]:
    if srm.get("mismatch"):
        return stats.CONTINUE, (
            f"sample ratio mismatch (p = {srm['p_value']:.2g} < {stats.SRM_ALPHA}): the split is "
            "broken, and no decision stands on it; find why before reading the metric"
        )
    decisions = [t["decision"] for t in tests]
    better = [t for t in tests if t["decision"] == stats.CHALLENGER]
    if better:
        best = better[0]
        return stats.CHALLENGER, f"{best['arm']}: {best['reason']}"
    if stats.CONTINUE in decisions:
        waiting = next(t for t in tests if t["decision"] == stats.CONTINUE)
        return stats.CONTINUE, f"{waiting['arm']}: {waiting['reason']}"
    if stats.CHAMPION in decisions:
        return stats.CHAMPION, "; ".join(f"{t['arm']}: {t['reason']}" for t in tests)
    return stats.NO_DIFFERENCE, "; ".join(f"{t['arm']}: {t['reason']}" for t in tests)


def _inputs(
    session: Session, experiment: Experiment
) -> tuple[list[query.ArmSpec], InputSchema, list[Attribute]]:
    """The arms, the champion's input schema (its classes) and the guardrails' attributes."""
    arms = _arm_specs(experiment.config)
    versions = [
        (a.model, registry.get_version(session=session, name=a.model, version=a.version)[1])
        for a in arms
    ]
    schema = InputSchema.from_document(versions[0][1].input_schema)
    names = experiment.config["guardrails"]["attributes"]
    attributes: list[Attribute] = fairness_service._attributes(versions, names, {}) if names else []
    return arms, schema, attributes


def keep_counts(session: Session, experiment_id: str) -> int:
    """Bring a running experiment's kept counts up to date (the alert scan does, so a report
    read after a restart does not count a long experiment from the start); the seq counted to."""
    experiment = get(session, experiment_id)
    arms, schema, attributes = _inputs(session, experiment)
    _c, _t, upto = _tallied(
        session.connection(), experiment, arms, experiment.started_seq, schema, attributes
    )
    return upto


def running(session: Session) -> list[str]:
    return list(
        session.exec(select(Experiment.experiment_id).where(Experiment.status == RUNNING)).all()
    )


def _tallied(
    connection: sa.Connection,
    experiment: Experiment,
    arms: list[query.ArmSpec],
    first: int,
    schema: InputSchema,
    attributes: list[Attribute],
) -> tuple[dict[str, query.ArmCounts], dict[str, list[float]], int]:
    """Every arm's counts from the kept tally (brought up to date), each routed arm's slowest
    latencies when the p99 guardrail is declared, and the seq counted to."""
    config = experiment.config
    metric = config["metric"]
    wants_p99 = config["guardrails"].get("max_p99_latency_ms") is not None

    def tail_size(arm: query.ArmSpec, c: query.ArmCounts) -> int | None:
        """How many of the arm's slowest latencies its 99th percentile's interval needs."""
        ranks = stats.quantile_ranks(c.timed)
        if not wants_p99 or arm.route is None or ranks is None:
            return None
        return c.timed - ranks[0] + 1

    key = tally.Key(
        endpoint=experiment.endpoint,
        arms=tuple(arms),
        started=first,
        ended=experiment.ended_seq,
        favourable=config["favourable_label"],
        positive=str(schema.positive_class),
        attributes=tuple(attributes),
        auc=metric["kind"] == "auc",
        outcomes=metric["kind"] != "approval_rate",
    )
    counted, tails, marks = tally.tallies_of(connection.engine).counts(
        connection, key, tally.tail_sizes_of(arms, tail_size)
    )
    return counted, tails, marks.seq


def report(
    session: Session,
    settings: Settings,
    experiment_id: str,
    principal: Principal,
    now: datetime,
    since_seq: int | None = None,
) -> dict[str, Any]:
    """The report; with ``since_seq``, of the decisions after that seq only (a roll-out's
    current step), and then no decision is recorded."""
    started = time.perf_counter()
    experiment = get(session, experiment_id)
    first = max(experiment.started_seq, since_seq or 0)
    config = experiment.config
    connection = session.connection()
    arms, schema, attributes = _inputs(session, experiment)
    metric, stop, rails, plan = (
        config["metric"],
        config["stopping"],
        config["guardrails"],
        config["plan"],
    )
    counted, tails, upto = _tallied(connection, experiment, arms, first, schema, attributes)
    # Each challenger is tested at alpha / k (Bonferroni over the k challengers).
    k = len(arms) - 1
    rule = stats.Rule(
        stop["kind"],
        stop["alpha"] / k,
        metric["mde"],
        metric.get("direction") or schemas.DIRECTIONS[metric["kind"]],
        plan["last_look_per_arm"],
    )
    champion = _estimate(metric["kind"], counted["champion"], metric.get("costs"))
    with_groups = principal.role in SEES_GROUPS
    arm_reports: list[dict[str, Any]] = []
    tests: list[dict[str, Any]] = []
    breaches: list[dict[str, Any]] = []
    shadows: list[dict[str, Any]] = []
    for arm in arms:
        c = counted[arm.arm]
        estimate = _estimate(metric["kind"], c, metric.get("costs"))
        tail = tails.get(arm.arm, [])
        rails_report, breached = _guardrails(
            arm, c, rails, settings.fairness_min_group_size, with_groups, tail
        )
        breaches += breached
        arm_reports.append(
            {
                "arm": arm.arm,
                "model": arm.model,
                "version": arm.version,
                "mode": arm.mode,
                "decisions": c.n,
                "metric": _metric_entry(estimate, stop["alpha"]),
                "guardrails": rails_report,
            }
        )
        if arm.mode == "champion":
            continue
        paired = None
        if arm.mode == "shadow":
            shadows.append(
                {
                    "arm": arm.arm,
                    "paired_decisions": c.paired,
                    "disagreements": c.only_arm + c.only_champion,
                    "disagreement_rate": (c.only_arm + c.only_champion) / c.paired
                    if c.paired
                    else None,
                    "favourable_only_here": c.only_arm,
                    "favourable_only_by_champion": c.only_champion,
                    **(
                        _disagreements_by_group(
                            connection, experiment, arm, arms[0], first, upto, attributes, c
                        )
                        if with_groups
                        else {"by_group": None, "examples": None}
                    ),
                }
            )
            if metric["kind"] == "approval_rate" and c.paired:
                paired = stats.paired_proportion_variance(c.only_arm, c.only_champion, c.paired)
        test = stats.compare(champion, estimate, rule, paired)
        tests.append({"arm": arm.arm, "paired": paired is not None, "alpha": rule.alpha, **test})
    routed = [a for a in arms if a.route is not None]
    weights = [1 - sum(ch.get("weight") or 0 for ch in config["challengers"])]
    weights += [ch["weight"] for ch in config["challengers"] if ch["mode"] == "canary"]
    srm = (
        stats.sample_ratio([counted[a.arm].n for a in routed], weights)
        if len(routed) > 1
        else {"statistic": None, "p_value": None, "mismatch": None, "expected_share": None}
    )
    decision, reason = _overall(tests, srm)
    decided_at = experiment.decided_at
    if experiment.decided is not None:
        decision, reason = experiment.decided["decision"], "decided " + experiment.decided["reason"]
    elif decision != stats.CONTINUE and since_seq is None:
        decided_at = _record_decision(
            session, experiment, decision, reason, tests, upto, principal, now
        )
    access.record(
        session,
        principal,
        "experiment.report",
        target=experiment_id,
        rows=sum(a["decisions"] for a in arm_reports),
    )
    return {
        "experiment_id": experiment.experiment_id,
        "name": experiment.name,
        "endpoint": experiment.endpoint,
        "status": experiment.status,
        "version": experiment.version,
        "config": config,
        "created_at": experiment.created_at,
        "created_by": experiment.created_by,
        "ended_at": experiment.ended_at,
        "decision": decision,
        "decided_at": decided_at,
        "reason": reason,
        "planned_per_arm": plan["planned_per_arm"],
        "last_look_per_arm": plan["last_look_per_arm"],
        "arms": arm_reports,
        "tests": tests,
        "sample_ratio": srm,
        "guardrails_breached": breaches,
        "shadows": shadows,
        "counted_to_seq": upto,
        "compute_ms": round(1000 * (time.perf_counter() - started), 3),
    }


def _record_decision(
    session: Session,
    experiment: Experiment,
    decision: str,
    reason: str,
    tests: list[dict[str, Any]],
    upto: int,
    principal: Principal,
    now: datetime,
) -> datetime:
    """The first report to reach a decision records it: the stopping rule's verdict stands from
    then on (a sequential test must not be read again until it flips back)."""
    decided = {"decision": decision, "reason": reason, "tests": tests, "counted_to_seq": upto}
    stored = session.execute(
        sa.update(Experiment)
        .where(col(Experiment.id) == experiment.id, col(Experiment.decided_at).is_(None))
        .values(decided=decided, decided_at=now)
    )
    if stored.rowcount == 1:  # type: ignore[attr-defined]
        events.record(
            session,
            principal,
            "experiment.decided",
            kind=KIND,
            subject=experiment.experiment_id,
            at=now,
            detail=decided,
        )
    session.refresh(experiment)
    return experiment.decided_at or now
