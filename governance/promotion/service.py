"""Promotion with effective challenge: a request gathers the evidence and hashes it into the
governance chain; a validator (never the key that trained, registered or asked) approves with a
rationale, or rejects; an admin may waive the evidence or the approval, in writing. An approved
promotion is applied in one transaction: the version to production and the endpoint's live route
to it (a running experiment on the endpoint ends). A rollback gives an endpoint its previous
configuration. Every step is in the chain and the stage history."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from core.audit import access
from core.auth.models import Role
from core.auth.schemas import Principal
from core.config import Settings
from core.db import transaction
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.pagination import Page
from explain import service as explain_service
from explain.fairness import service as fairness_service
from governance.changes import events
from governance.experiments import query as experiment_query
from governance.experiments import service as experiments
from governance.experiments.models import Experiment
from governance.experiments.schemas import ExperimentIn
from governance.promotion import evidence
from governance.promotion.models import Promotion
from lineage import registry
from lineage.models import Stage, TrainingRun
from serving import endpoints
from serving.schemas import EndpointConfigIn, RouteSpec, ShadowSpec

log = logging.getLogger("govern.promotion")

KIND = "promotion"
GATHERING, REQUESTED, ROLLING_OUT = "gathering", "requested", "rolling_out"
REJECTED, APPLIED, ROLLED_BACK, FAILED = "rejected", "applied", "rolled_back", "failed"


def get(session: Session, promotion_id: str) -> Promotion:
    found = session.exec(select(Promotion).where(Promotion.promotion_id == promotion_id)).first()
    if found is None:
        raise NotFound(f"no promotion {promotion_id}")
    return found


def request(
    session: Session,
    principal: Principal,
    *,
    name: str,
    number: int,
    endpoint: str,
    rationale: str,
    experiment_id: str | None,
    robustness_decisions: int,
    now: datetime,
    rollout: dict[str, Any] | None = None,
) -> Promotion:
    _m, candidate = registry.get_version(session=session, name=name, version=number)
    if rollout is not None and rollout["guardrails"]["attributes"]:
        fairness_service._attributes([(name, candidate)], rollout["guardrails"]["attributes"], {})
    endpoints.endpoint_row(session, endpoint)
    if experiment_id is not None:
        experiment = experiments.get(session, experiment_id)
        if experiment.endpoint != endpoint:
            raise InvalidInput.at("experiment_id", f"ran on {experiment.endpoint}, not {endpoint}")
    promotion = Promotion(
        promotion_id=str(uuid.uuid4()),
        model=name,
        version=number,
        endpoint=endpoint,
        status=GATHERING,
        rationale=rationale,
        experiment_id=experiment_id,
        requested_at=now,
        requested_by=principal.key_id,
        evidence_gaps=[],
        progress={"stage": "queued", "done": 0, "total": robustness_decisions},
        waivers=[],
        rollout=None
        if rollout is None
        else {
            **rollout,
            "experiment_id": None,
            "step": 0,
            "weight": rollout["steps"][0],
            "step_started_seq": 0,
            "history": [],
        },
    )
    try:
        with session.begin_nested():
            session.add(promotion)
    except IntegrityError:
        raise Conflict(
            f"{name} v{number} has an open promotion to {endpoint}: approve, reject or let it be"
        ) from None
    _record(
        session,
        principal,
        promotion,
        "promotion.requested",
        now,
        {"rationale": rationale, "robustness_decisions": robustness_decisions},
    )
    return promotion


def _progress(
    sessions: sessionmaker[Session], promotion_id: str, stage: str, done: int, total: int
) -> None:
    with transaction(sessions) as session:
        promotion = get(session, promotion_id)
        promotion.progress = {"stage": stage, "done": done, "total": total}
        session.add(promotion)


def gather(
    sessions: sessionmaker[Session],
    settings: Settings,
    explainers: explain_service.Explainers,
    principal: Principal,
    promotion_id: str,
    now: Callable[[], datetime],
) -> None:
    """The job: the robustness sample (read only, its progress written after each decision),
    then the rest of the evidence; the bundle stored and its sha256 recorded in the chain. A
    failure is recorded on the promotion, which then cannot be approved."""
    try:
        with transaction(sessions) as session:
            promotion = get(session, promotion_id)
            total = int((promotion.progress or {}).get("total") or 0)
            robust = evidence.robustness(
                session,
                settings,
                explainers,
                name=promotion.model,
                number=promotion.version,
                endpoint=promotion.endpoint,
                n=total,
                progress=lambda done, n: _progress(sessions, promotion_id, "robustness", done, n),
            )
        _progress(sessions, promotion_id, "card, rebuild, drift and experiment", total, total)
        with transaction(sessions) as session:
            promotion = get(session, promotion_id)
            at = now()
            bundle, gaps = evidence.gather(
                session,
                settings,
                explainers,
                principal,
                name=promotion.model,
                number=promotion.version,
                endpoint=promotion.endpoint,
                experiment_id=promotion.experiment_id,
                robust=robust,
                now=at,
            )
            promotion.evidence, promotion.evidence_sha256 = bundle, evidence.digest(bundle)
            promotion.evidence_gaps, promotion.status = gaps, REQUESTED
            promotion.progress = {"stage": "gathered", "done": total, "total": total}
            session.add(promotion)
            _record(
                session,
                principal,
                promotion,
                "promotion.evidence",
                at,
                {"evidence_sha256": promotion.evidence_sha256, "gaps": gaps},
            )
    except Exception as exc:
        log.exception("promotion %s: gathering the evidence failed", promotion_id)
        with transaction(sessions) as session:
            promotion = get(session, promotion_id)
            promotion.status, promotion.error = FAILED, f"{type(exc).__name__}: {exc}"
            session.add(promotion)
            _record(session, principal, promotion, "promotion.failed", now(), {"error": str(exc)})


def _record(
    session: Session,
    principal: Principal,
    promotion: Promotion,
    event: str,
    now: datetime,
    detail: dict[str, Any],
) -> None:
    events.record(
        session,
        principal,
        event,
        kind=KIND,
        subject=promotion.promotion_id,
        at=now,
        detail={
            "model": promotion.model,
            "version": promotion.version,
            "endpoint": promotion.endpoint,
            **detail,
        },
    )


def _waived(promotion: Promotion, what: str) -> bool:
    return any(w["what"] == what for w in promotion.waivers)


def _open(session: Session, promotion_id: str) -> Promotion:
    promotion = get(session, promotion_id)
    if promotion.status == GATHERING:
        progress = promotion.progress or {}
        raise Conflict(
            f"the evidence is still being gathered ({progress.get('stage')}: "
            f"{progress.get('done')} of {progress.get('total')} robustness decisions): "
            "decide once it is complete"
        )
    if promotion.status != REQUESTED:
        raise Conflict(f"the promotion is {promotion.status.replace('_', ' ')}: it is closed")
    return promotion


def _independent(session: Session, promotion: Promotion, principal: Principal) -> None:
    """A validator is a second pair of eyes: not the key that asked, trained or registered."""
    _m, version = registry.get_version(
        session=session, name=promotion.model, version=promotion.version
    )
    trained = session.get(TrainingRun, version.run_id) if version.run_id is not None else None
    involved = {
        "asked for this promotion": promotion.requested_by,
        "trained this version": trained.created_by if trained is not None else None,
        "registered it": version.created_by,
    }
    matched = [what for what, key in involved.items() if key == principal.key_id]
    if matched:
        raise Forbidden(
            f"the key that {' and '.join(matched)} cannot approve it: a validator must be another"
        )


def approve(
    session: Session, promotion_id: str, rationale: str, principal: Principal, now: datetime
) -> Promotion:
    promotion = _open(session, promotion_id)
    _independent(session, promotion, principal)
    if promotion.evidence_gaps and not _waived(promotion, "evidence"):
        raise Conflict(
            "the evidence has gaps ("
            + ", ".join(promotion.evidence_gaps)
            + "): close them and ask again, or an admin waives them in writing",
            code="evidence_incomplete",
        )
    promotion.decided_at, promotion.decided_by = now, principal.key_id
    promotion.decision_rationale = rationale
    _record(session, principal, promotion, "promotion.approved", now, {"rationale": rationale})
    return _go(session, promotion, principal, now)


def reject(
    session: Session, promotion_id: str, rationale: str, principal: Principal, now: datetime
) -> Promotion:
    promotion = _open(session, promotion_id)
    _independent(session, promotion, principal)
    promotion.status, promotion.decided_at = REJECTED, now
    promotion.decided_by, promotion.decision_rationale = principal.key_id, rationale
    session.add(promotion)
    _record(session, principal, promotion, "promotion.rejected", now, {"rationale": rationale})
    return promotion


def waive(
    session: Session,
    promotion_id: str,
    what: str,
    reason: str,
    principal: Principal,
    now: datetime,
) -> Promotion:
    """An admin's written waiver: of the evidence's gaps, or of the validator's approval (which
    applies the promotion at once; the evidence must then stand or be waived too)."""
    promotion = _open(session, promotion_id)
    if principal.role is not Role.admin:
        raise Forbidden("only an admin may waive")
    if _waived(promotion, what):
        raise Conflict(f"the {what} is waived already")
    if what == "approval" and promotion.evidence_gaps and not _waived(promotion, "evidence"):
        raise Conflict(
            "the evidence has gaps (" + ", ".join(promotion.evidence_gaps) + "): waive the "
            "evidence first, in writing, if it must go ahead",
            code="evidence_incomplete",
        )
    waiver = {"what": what, "reason": reason, "by": principal.key_id, "at": now.isoformat()}
    promotion.waivers = [*promotion.waivers, waiver]
    session.add(promotion)
    _record(session, principal, promotion, "promotion.waived", now, waiver)
    if what == "approval":
        promotion.decided_at, promotion.decided_by = now, principal.key_id
        promotion.decision_rationale = f"approval waived: {reason}"
        return _go(session, promotion, principal, now)
    return promotion


def _go(session: Session, promotion: Promotion, principal: Principal, now: datetime) -> Promotion:
    """Approved: all at once, or the first step of its roll-out."""
    if promotion.rollout is None:
        return _apply(session, promotion, principal, now)
    return _start_rollout(session, promotion, principal, now)


def _end_running(
    session: Session, endpoint: str, why: str, principal: Principal, now: datetime
) -> str | None:
    running = session.exec(
        select(Experiment).where(
            Experiment.endpoint == endpoint, Experiment.status == experiments.RUNNING
        )
    ).first()
    if running is None:
        return None
    experiments.end(session, running.experiment_id, why, False, principal, now)
    return running.experiment_id


def _start_rollout(
    session: Session, promotion: Promotion, principal: Principal, now: datetime
) -> Promotion:
    """The candidate as a canary at the first step's share, in an experiment that watches its
    guardrails; ``tick`` takes the next steps."""
    plan = dict(promotion.rollout or {})
    live = endpoints.current_config(session, promotion.endpoint).routes[0]
    if (live.model, live.version) == (promotion.model, promotion.version):
        raise Conflict(
            f"{promotion.model} v{promotion.version} is live on {promotion.endpoint} already"
        )
    why = f"promotion {promotion.promotion_id} rolls out"
    ended = _end_running(session, promotion.endpoint, why, principal, now)
    body = ExperimentIn.model_validate(
        {
            "name": f"roll-out of {promotion.model} v{promotion.version}",
            "endpoint": promotion.endpoint,
            "champion": {"model": live.model, "version": live.version},
            "challengers": [
                {
                    "model": promotion.model,
                    "version": promotion.version,
                    "mode": "canary",
                    "weight": plan["steps"][0],
                }
            ],
            "metric": {"kind": "approval_rate", "mde": 0.05},
            "guardrails": plan["guardrails"],
            "stopping": {"kind": "msprt", "baseline": 0.5},
        }
    )
    before = endpoints.config_row(session, promotion.endpoint)
    experiment = experiments.create(session, body, principal, now)
    first = float(plan["steps"][0])
    plan.update(
        experiment_id=experiment.experiment_id,
        step=0,
        weight=first,
        step_started_seq=experiment.started_seq,
        history=[_step(now, 0, first, "started", 0, {}, "approved: the first step")],
    )
    promotion.rollout = plan
    promotion.status = ROLLING_OUT
    promotion.routing_before = before.id if before is not None else None
    session.add(promotion)
    _record(
        session,
        principal,
        promotion,
        "promotion.rollout_started",
        now,
        {"experiment_id": experiment.experiment_id, "weight": first, "experiment_ended": ended},
    )
    return promotion


def _step(
    now: datetime,
    step: int,
    weight: float,
    action: str,
    decisions: int,
    guardrails: dict[str, Any],
    reason: str,
) -> dict[str, Any]:
    return {
        "at": now.isoformat(),
        "step": step,
        "weight": weight,
        "action": action,
        "decisions": decisions,
        "guardrails": guardrails,
        "reason": reason,
    }


def tick(
    session: Session, settings: Settings, promotion_id: str, principal: Principal, now: datetime
) -> tuple[Promotion, str, str]:
    """One look at a roll-out's current step: roll back when a guardrail of the candidate is
    breached; step up when the step has its decisions and every declared guardrail holds (the
    last step makes it the live route); otherwise wait, saying for what."""
    promotion = get(session, promotion_id)
    if promotion.status != ROLLING_OUT:
        state = promotion.status.replace("_", " ")
        raise Conflict(f"the promotion is {state}: it is not rolling out")
    plan = dict(promotion.rollout or {})
    experiment_id = plan["experiment_id"]
    report = experiments.report(
        session, settings, experiment_id, principal, now, since_seq=plan["step_started_seq"]
    )
    [canary] = [a for a in report["arms"] if a["mode"] == "canary"]
    rails = {k: v for k, v in canary["guardrails"].items() if v["state"] != "not_declared"}
    n, step, share = int(canary["decisions"]), int(plan["step"]), float(plan["weight"])
    breached = sorted(k for k, v in rails.items() if v["state"] == "breached")
    if breached:
        why = "roll-out rolled back: " + ", ".join(breached)
        experiments.end(session, experiment_id, why, True, principal, now)
        reason = f"{', '.join(breached)} breached at {share:.0%} of the traffic"
        plan["history"] = [
            *plan["history"],
            _step(now, step, share, "rolled_back", n, rails, reason),
        ]
        promotion.rollout, promotion.status = plan, ROLLED_BACK
        session.add(promotion)
        detail: dict[str, Any] = {"reason": reason, "guardrails": rails}
        _record(session, principal, promotion, "promotion.rollout_rolled_back", now, detail)
        return promotion, "rolled_back", reason
    needed = int(plan["min_decisions_per_step"])
    if n < needed:
        return promotion, "waiting", f"{n} of the {needed} decisions this step needs"
    unsure = sorted(k for k, v in rails.items() if v["state"] != "holds")
    if unsure:
        states = ", ".join(f"{k} ({rails[k]['state'].replace('_', ' ')})" for k in unsure)
        return promotion, "waiting", f"not yet shown to hold: {states}"
    weight = float(plan["steps"][step + 1])
    if weight >= 1:
        experiments.end(session, experiment_id, "roll-out complete", False, principal, now)
        reason = f"every guardrail held at {share:.0%}: the candidate takes all the traffic"
        plan["history"] = [
            *plan["history"],
            _step(now, step + 1, 1.0, "completed", n, rails, reason),
        ]
        plan.update(step=step + 1, weight=1.0)
        promotion.rollout = plan
        detail = {"to": 1.0, "guardrails": rails}
        _record(session, principal, promotion, "promotion.rollout_step", now, detail)
        _apply(session, promotion, principal, now)
        return promotion, "completed", reason
    experiments.reweight(session, experiment_id, weight, principal, now)
    reason = f"every guardrail held at {share:.0%} over {n} decisions: now {weight:.0%}"
    plan["history"] = [
        *plan["history"],
        _step(now, step + 1, weight, "stepped_up", n, rails, reason),
    ]
    highest = experiment_query.highest_seq(session.connection())
    plan.update(step=step + 1, weight=weight, step_started_seq=highest)
    promotion.rollout = plan
    session.add(promotion)
    detail = {"to": weight, "guardrails": rails}
    _record(session, principal, promotion, "promotion.rollout_step", now, detail)
    return promotion, "stepped_up", reason


def rolling_out(session: Session) -> list[str]:
    """The promotions rolling out now (the alert scans look at each)."""
    query = select(Promotion.promotion_id).where(Promotion.status == ROLLING_OUT)
    return list(session.exec(query).all())


def _apply(
    session: Session, promotion: Promotion, principal: Principal, now: datetime
) -> Promotion:
    """The version to production and the endpoint's live route to it, in this transaction."""
    _m, version = registry.get_version(
        session=session, name=promotion.model, version=promotion.version
    )
    reason = (
        f"promotion {promotion.promotion_id}: evidence sha256 {promotion.evidence_sha256}, "
        f"approved by {promotion.decided_by}"
    )
    if registry.current_stage(session, version) is not Stage.production:
        registry.change_stage(
            session=session,
            name=promotion.model,
            version=promotion.version,
            stage=Stage.production,
            reason=reason,
            actor=principal.key_id,
        )
    ended = _end_running(
        session, promotion.endpoint, f"promotion {promotion.promotion_id} applied", principal, now
    )
    before = endpoints.config_row(session, promotion.endpoint)
    current = endpoints.current_config(session, promotion.endpoint)
    target = (promotion.model, promotion.version)
    config = EndpointConfigIn(
        routes=[RouteSpec(model=promotion.model, version=promotion.version, name="live")],
        shadows=[
            ShadowSpec(model=s.model, version=s.version)
            for s in current.shadows
            if (s.model, s.version) != target
        ],
        sticky=current.sticky,
        public_context=list(current.public_context),
    )
    endpoints.put_endpoint(
        session=session, name=promotion.endpoint, config_in=config, actor=principal.key_id
    )
    applied = endpoints.config_row(session, promotion.endpoint)
    promotion.status, promotion.applied_at = APPLIED, now
    if promotion.rollout is None:
        promotion.routing_before = before.id if before is not None else None
    promotion.routing_applied = applied.id if applied is not None else None
    session.add(promotion)
    _record(
        session,
        principal,
        promotion,
        "promotion.applied",
        now,
        {
            "stage": "production",
            "routing": {"before": promotion.routing_before, "applied": promotion.routing_applied},
            "experiment_ended": ended,
        },
    )
    return promotion


def rollback(
    session: Session, endpoint: str, reason: str, principal: Principal, now: datetime
) -> dict[str, Any]:
    """The endpoint back to the configuration before its latest one, as a new configuration; a
    promotion that made the latest one is marked rolled back. Stages are left as they are."""
    latest = endpoints.config_row(session, endpoint)
    previous = endpoints.config_row(session, endpoint, back=1)
    if latest is None or previous is None:
        raise Conflict(f"{endpoint} has had one configuration: there is nothing to roll back to")
    document = EndpointConfigIn.model_validate(
        {k: v for k, v in previous.config.items() if k in EndpointConfigIn.model_fields}
    )
    endpoints.put_endpoint(
        session=session, name=endpoint, config_in=document, actor=principal.key_id
    )
    restored = endpoints.config_row(session, endpoint)
    assert restored is not None
    promotion = session.exec(
        select(Promotion).where(
            Promotion.endpoint == endpoint,
            Promotion.status == APPLIED,
            Promotion.routing_applied == latest.id,
        )
    ).first()
    if promotion is not None:
        promotion.status = ROLLED_BACK
        session.add(promotion)
    detail = {
        "reason": reason,
        "from_config": latest.id,
        "to_config": previous.id,
        "as_config": restored.id,
        "promotion": promotion.promotion_id if promotion is not None else None,
    }
    events.record(
        session,
        principal,
        "endpoint.rolled_back",
        kind="endpoint",
        subject=endpoint,
        at=now,
        detail=detail,
    )
    return detail


def read(session: Session, promotion_id: str, principal: Principal) -> dict[str, Any]:
    promotion = get(session, promotion_id)
    access.record(session, principal, "promotion.read", target=promotion_id)
    return public(session, promotion)


def listing(
    session: Session, principal: Principal, page: Page, status: str | None
) -> list[Promotion]:
    query = select(Promotion).order_by(col(Promotion.id).desc()).limit(page.limit)
    if page.cursor is not None:
        query = query.where(col(Promotion.id) < page.cursor)
    if status is not None:
        query = query.where(Promotion.status == status)
    rows = list(session.exec(query).all())
    access.record(session, principal, "promotion.list", params={"status": status}, rows=len(rows))
    return rows


def public(session: Session, promotion: Promotion, evidence_too: bool = True) -> dict[str, Any]:
    return {
        "promotion_id": promotion.promotion_id,
        "model": promotion.model,
        "version": promotion.version,
        "endpoint": promotion.endpoint,
        "status": promotion.status,
        "rationale": promotion.rationale,
        "experiment_id": promotion.experiment_id,
        "requested_at": promotion.requested_at,
        "requested_by": promotion.requested_by,
        "evidence_sha256": promotion.evidence_sha256,
        "evidence_gaps": promotion.evidence_gaps,
        "evidence": promotion.evidence if evidence_too else None,
        "progress": promotion.progress,
        "error": promotion.error,
        "decided_at": promotion.decided_at,
        "decided_by": promotion.decided_by,
        "decision_rationale": promotion.decision_rationale,
        "waivers": promotion.waivers,
        "applied_at": promotion.applied_at,
        "routing": {"before": promotion.routing_before, "applied": promotion.routing_applied},
        "rollout": promotion.rollout,
        "history": events.steps(session, KIND, promotion.promotion_id),
    }
