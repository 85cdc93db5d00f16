"""Adverse-action notices: made once per unfavourable decision, held when their reasons are not
stable (or would name a protected attribute), released by a person, marked sent, and watched by
the delivery clock. Every step is a record in the ``case`` chain and an access-trail entry."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from core.audit import access
from core.audit.models import Alert
from core.auth.schemas import Principal
from core.config import Settings
from core.db import utcnow
from core.errors import Conflict, InvalidInput, NotFound
from core.pagination import Page
from explain import reasons as reason_codes
from explain import service as explain_service
from explain.fairness.stats import wilson
from governance.casework import awaiting, events, notices, templating
from governance.casework.models import AdverseNotice
from governance.compliance.dossier import _version_of, decision_words
from serving import metrics

log = logging.getLogger("govern.notices")

NOTICE_TEMPLATE = "notice.html"
ISSUED, HELD = "issued", "held"
STATES = ("unsent", "due_soon", "overdue", "held", "sent")
CHANNELS = ("mail", "email", "portal", "in_person")


def _reasons_at(
    session: Session,
    explainers: explain_service.Explainers,
    principal: Principal,
    decision_id: str,
    seed: int | None,
    schema: Any,
    logged: explain_service.Logged,
) -> tuple[int | None, list[dict[str, Any]], str]:
    """The reason codes from SHAP with this seed: (the seed SHAP used, None if exact; the
    reasons; the method)."""
    shap = explain_service.explain(
        session, explainers, decision_id, "shap", {"seed": seed}, principal
    )
    found = reason_codes.adverse_action_reasons(
        schema, shap, logged.content.get("label"), schema.favourable, logged.features
    )
    if schema.scorecard is not None:
        return None, list(found["reasons"]), explain_service.SCORECARD_METHOD
    return shap.get("seed"), list(found["reasons"]), str(shap.get("method") or "SHAP")


def _stability(
    session: Session,
    explainers: explain_service.Explainers,
    principal: Principal,
    decision_id: str,
    schema: Any,
    logged: explain_service.Logged,
    recorded: int,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    used, first, method = _reasons_at(
        session, explainers, principal, decision_id, recorded, schema, logged
    )
    by_seed: list[tuple[int | None, list[dict[str, Any]]]] = [(used, first)]
    for seed in notices.seeds_for(used)[1:]:
        _, found, _ = _reasons_at(session, explainers, principal, decision_id, seed, schema, logged)
        by_seed.append((seed, found))
    return first, notices.stability(by_seed, method)


def existing(session: Session, decision_id: str) -> AdverseNotice | None:
    return session.exec(
        select(AdverseNotice).where(AdverseNotice.decision_id == decision_id)
    ).first()


def state_of(notice: AdverseNotice, settings: Settings, now: datetime) -> str:
    if notice.sent_at is not None:
        return "sent"
    if now > notice.due_at:
        return "overdue"
    if notice.due_at - now <= timedelta(days=settings.notice_due_soon_days):
        return "due_soon"
    return "held" if notice.status == HELD else "unsent"


def public(notice: AdverseNotice, settings: Settings, now: datetime) -> dict[str, Any]:
    held = notice.held_because or []
    return {
        "notice_id": notice.notice_id,
        "decision_id": notice.decision_id,
        "status": notice.status,
        "clock": state_of(notice, settings, now),
        "held_because": [{"code": h, "text": notices.HELD_WORDS.get(h, h)} for h in held],
        "model": {"name": notice.model, "version": notice.version},
        "decision_made_at": notice.decision_made_at,
        "generated_at": notice.generated_at,
        "generated_by": notice.generated_by,
        "due_at": notice.due_at,
        "released": None
        if notice.released_at is None
        else {
            "at": notice.released_at,
            "by": notice.released_by,
            "rationale": notice.release_rationale,
        },
        "sent": None
        if notice.sent_at is None
        else {"at": notice.sent_at, "by": notice.sent_by, "channel": notice.channel},
        "reasons": notice.content.get("reasons", []),
        "score_disclosure": notice.content.get("score"),
        "stability": notice.stability,
        "template": {
            "name": notice.template_name,
            "version": notice.template_version,
            "sha256": notice.template_sha256,
        },
        "html_sha256": notice.html_sha256,
        "pdf_sha256": notice.pdf_sha256,
        "compute_ms": notice.compute_ms,
    }


def generate(
    session: Session,
    explainers: explain_service.Explainers,
    settings: Settings,
    decision_id: str,
    principal: Principal,
    now: datetime,
) -> tuple[AdverseNotice, bool]:
    """The decision's notice: the stored one, or a new one made now; (notice, made now)."""
    logged = explain_service.logged_decision(session, decision_id)
    record = logged.record
    if record.kind != "decision":
        raise Conflict(f"a notice answers a decision, and this record is a {record.kind}")
    found = existing(session, decision_id)
    if found is not None:
        access.record(session, principal, "notice.read", target=decision_id)
        return found, False
    version, schema = _version_of(session, record)
    favourable = schema.is_favourable(record.label)
    if favourable is None:
        raise Conflict("the decision has no label the model's favourable class can judge")
    if favourable:
        raise Conflict("the decision was favourable: there is no adverse action to notify")
    started = time.perf_counter()
    ranked, stable = _stability(
        session,
        explainers,
        principal,
        decision_id,
        schema,
        logged,
        explain_service.recorded_seed(version),
    )
    reasons, left_out = notices.notice_reasons(schema, ranked)
    held = notices.held_because(reasons, left_out, stable)
    notice_id = str(uuid.uuid4())
    disclosure = settings.notice_score_disclosure.get(str(record.model))
    decision = {
        "decision_id": decision_id,
        "subject_id": record.subject_id,
        "created_at": record.created_at,
        "model": record.model,
        "version": record.version,
    }
    content = notices.content(
        notice_id=notice_id,
        decision=decision,
        action=decision_words(schema)["unfavourable"],
        reasons=reasons,
        creditor={"name": settings.creditor_name, "address": settings.creditor_address},
        agency=settings.notice_agency,
        generated_at=now,
        score=notices.score_disclosure(
            disclosure.model_dump() if disclosure is not None else None,
            record.score,
            record.created_at,
            reasons,
        ),
    )
    checked = time.perf_counter()
    template = templating.current(session, settings, NOTICE_TEMPLATE)
    html = templating.render_html(template, n=content)
    rendered = time.perf_counter()
    pdf = templating.render_pdf(html)
    printed = time.perf_counter()
    notice = AdverseNotice(
        notice_id=notice_id,
        decision_id=decision_id,
        status=HELD if held else ISSUED,
        model=str(record.model),
        version=int(record.version or 0),
        decision_made_at=record.created_at,
        generated_at=now,
        generated_by=principal.key_id,
        due_at=record.created_at + timedelta(days=settings.notice_deadline_days),
        held_because=held or None,
        template_name=template.name,
        template_version=template.version,
        template_sha256=template.sha256,
        content=content,
        stability={**stable, "left_out_protected": left_out},
        html=html,
        html_sha256=templating.sha256(html),
        pdf=pdf,
        pdf_sha256=templating.sha256(pdf),
        compute_ms={
            "reasons_and_stability": round(1000 * (checked - started), 3),
            "html": round(1000 * (rendered - checked), 3),
            "pdf": round(1000 * (printed - rendered), 3),
        },
    )
    session.add(notice)
    session.flush()
    events.record(
        session,
        principal,
        "notice.generated",
        decision_id=decision_id,
        subject=notice_id,
        at=now,
        detail={
            "status": notice.status,
            "held_because": held,
            "reasons": [r["code"] for r in reasons],
            "stable": stable["stable"],
            "template": {"name": template.name, "version": template.version},
            "template_sha256": template.sha256,
            "html_sha256": notice.html_sha256,
            "pdf_sha256": notice.pdf_sha256,
            "due_at": notice.due_at.isoformat(),
        },
    )
    access.record(session, principal, "notice.generate", target=decision_id)
    return notice, True


def get(session: Session, decision_id: str, principal: Principal, fmt: str) -> AdverseNotice:
    found = existing(session, decision_id)
    if found is None:
        raise NotFound(f"no notice for decision {decision_id}: POST one first")
    access.record(session, principal, "notice.read", target=decision_id, params={"format": fmt})
    if fmt in ("html", "pdf") and found.html is None:
        raise Conflict(
            "the notice was purged by retention: its dates, status and hashes remain, its "
            "document does not"
        )
    return found


def release(
    session: Session, decision_id: str, rationale: str, principal: Principal, now: datetime
) -> AdverseNotice:
    """A person reviewed a held notice and lets it be sent, saying why."""
    notice = get(session, decision_id, principal, "json")
    if notice.status != HELD:
        raise Conflict("the notice is not held: there is nothing to release")
    notice.status, notice.released_at = ISSUED, now
    notice.released_by, notice.release_rationale = principal.key_id, rationale
    session.add(notice)
    events.record(
        session,
        principal,
        "notice.released",
        decision_id=decision_id,
        subject=notice.notice_id,
        at=now,
        detail={"rationale": rationale, "held_because": notice.held_because or []},
    )
    return notice


def mark_sent(
    session: Session,
    decision_id: str,
    sent_at: datetime | None,
    channel: str,
    principal: Principal,
    now: datetime,
) -> AdverseNotice:
    notice = get(session, decision_id, principal, "json")
    if notice.status == HELD:
        raise Conflict("the notice is held for review: release it before sending it")
    if notice.sent_at is not None:
        raise Conflict(f"the notice was marked sent already, at {notice.sent_at.isoformat()}")
    when = sent_at or now
    if when > now:
        raise InvalidInput.at("sent_at", "is in the future")
    if when < notice.generated_at:
        raise InvalidInput.at("sent_at", "is before the notice was generated")
    notice.sent_at, notice.sent_by, notice.channel = when, principal.key_id, channel
    session.add(notice)
    events.record(
        session,
        principal,
        "notice.sent",
        decision_id=decision_id,
        subject=notice.notice_id,
        at=now,
        detail={
            "sent_at": when.isoformat(),
            "channel": channel,
            "pdf_sha256": notice.pdf_sha256,
            "days_after_decision": round(
                (when - notice.decision_made_at).total_seconds() / 86400, 2
            ),
        },
    )
    return notice


def _clock_filters(settings: Settings, now: datetime) -> dict[str, list[Any]]:
    soon = now + timedelta(days=settings.notice_due_soon_days)
    unsent = col(AdverseNotice.sent_at).is_(None)
    return {
        "sent": [col(AdverseNotice.sent_at).is_not(None)],
        "overdue": [unsent, col(AdverseNotice.due_at) < now],
        "due_soon": [unsent, col(AdverseNotice.due_at) >= now, col(AdverseNotice.due_at) <= soon],
        "held": [unsent, AdverseNotice.status == HELD, col(AdverseNotice.due_at) > soon],
        "unsent": [unsent, AdverseNotice.status == ISSUED, col(AdverseNotice.due_at) > soon],
    }


def clock_counts(session: Session, settings: Settings, now: datetime) -> dict[str, int]:
    """How many notices are in each clock state now."""
    return {
        name: int(session.exec(select(func.count()).select_from(AdverseNotice).where(*c)).one())
        for name, c in _clock_filters(settings, now).items()
    }


def listing(
    session: Session,
    settings: Settings,
    principal: Principal,
    page: Page,
    state: str | None,
    now: datetime,
) -> tuple[list[AdverseNotice], dict[str, int]]:
    """Notices by id, newest first, in one clock state (or all); and the count in each state."""
    query = select(AdverseNotice).order_by(col(AdverseNotice.id).desc()).limit(page.limit)
    if page.cursor is not None:
        query = query.where(col(AdverseNotice.id) < page.cursor)
    if state is not None:
        query = query.where(*_clock_filters(settings, now)[state])
    rows = list(session.exec(query).all())
    access.record(session, principal, "notice.list", params={"state": state}, rows=len(rows))
    return rows, clock_counts(session, settings, now)


OVERDUE_ALERT = "notice_overdue"
ALERT_EPISODE = timedelta(days=1)
ALERT_EXAMPLES = 10


def clock_scan(session: Session, settings: Settings, now: datetime) -> Alert | None:
    """The delivery clock's watch (run with the alert scans): the overdue and due-soon gauges,
    and an alert while any notice is overdue; one alert per episode, extended by later scans."""
    counts = clock_counts(session, settings, now)
    metrics.NOTICES_OVERDUE.set(counts["overdue"])
    metrics.NOTICES_DUE_SOON.set(counts["due_soon"])
    waiting = awaiting.counts(session, settings, now)
    for state, n in waiting.items():
        metrics.DENIALS_WITHOUT_NOTICE.labels(clock=state).set(n)
    if not counts["overdue"] and not waiting["overdue"]:
        return None
    late = session.exec(
        select(AdverseNotice)
        .where(*_clock_filters(settings, now)["overdue"])
        .order_by(col(AdverseNotice.due_at))
        .limit(ALERT_EXAMPLES)
    ).all()
    detail = {
        "overdue": counts["overdue"],
        "oldest_due_at": late[0].due_at.isoformat() if late else None,
        "decisions": [n.decision_id for n in late],
        "without_notice_overdue": waiting["overdue"],
        "rule": f"an adverse-action notice unsent {settings.notice_deadline_days} days after "
        "its decision, or an adverse decision that old with no notice made (within "
        f"{settings.notice_watch_days} days: GET /api/v1/notices/awaiting)",
    }
    alert = session.exec(
        select(Alert)
        .where(Alert.kind == OVERDUE_ALERT, col(Alert.last_seen_at) >= now - ALERT_EPISODE)
        .order_by(col(Alert.id).desc())
        .limit(1)
    ).first()
    if alert is None:
        alert = Alert(
            alert_id=str(uuid.uuid4()),
            kind=OVERDUE_ALERT,
            key_id="-",
            endpoint="notices",
            first_seen_at=now,
            last_seen_at=now,
            requests=counts["overdue"] + waiting["overdue"],
            detail=detail,
        )
        log.warning(
            "notice alert: %d adverse-action notices overdue, %d adverse decisions overdue with "
            "no notice",
            counts["overdue"],
            waiting["overdue"],
        )
    else:
        alert.last_seen_at, alert.detail = now, detail
        alert.requests = counts["overdue"] + waiting["overdue"]
        alert.updated_at = utcnow()
    session.add(alert)
    session.flush()
    return alert


def stability_by_version(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """The share of notices whose reasons were stable under other seeds, by model version, with a
    95% Wilson interval (an interval, not a verdict: a handful of notices says little)."""
    rows = session.exec(
        select(AdverseNotice.model, AdverseNotice.version, AdverseNotice.stability)
    ).all()
    by_version: dict[tuple[str, int], list[bool]] = {}
    for model, version, stable in rows:
        by_version.setdefault((model, version), []).append(bool(stable.get("stable")))
    access.record(session, principal, "notice.stability", rows=len(rows))
    result = []
    for (model, version), flags in sorted(by_version.items()):
        low, high = wilson(sum(flags), len(flags)) or (None, None)
        result.append(
            {
                "model": model,
                "version": version,
                "notices": len(flags),
                "stable": sum(flags),
                "stable_share": sum(flags) / len(flags),
                "stable_share_ci95": [low, high],
            }
        )
    return result
