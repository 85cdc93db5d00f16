"""Appeal cases: an applicant contests one decision, a person reviews it with the corrected data,
and decides, with reasons. ``open -> under_review -> decided (upheld | overturned | referred) ->
closed``; every transition is a record in the ``case`` chain and every read an access-trail entry.

- At most one case per decision is not closed (a partial unique index, and a check first).
- The reviewer is assigned by compliance, holds the reviewer or compliance role, and is never the
  key that opened the case; only the assigned reviewer decides.
- An overturn records the decision a person made instead, linked to the original; the automated
  decision in the log is never altered.
- Attached documents are hashed (sha256 and size), not kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import statistics
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.audit import access
from core.auth import service as auth_service
from core.auth.models import ApiKey, Role
from core.auth.schemas import Principal
from core.config import Settings
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.pagination import Page
from explain import reasons as reason_codes
from explain import service as explain_service
from explain.fairness.stats import wilson
from governance.casework import events, notices, templating
from governance.casework.models import AppealCase
from governance.compliance.dossier import _version_of, class_in_words, decision_words
from serving.lookups import get_decision
from serving.models import DecisionRecord
from serving.state import Serving
from serving.validation import canonical_features

OPEN, UNDER_REVIEW, DECIDED, CLOSED = "open", "under_review", "decided", "closed"
OUTCOMES = ("upheld", "overturned", "referred")
REVIEWER_ROLES = (Role.reviewer, Role.compliance)
READS_ALL = (Role.reviewer, Role.compliance, Role.admin)


def _open_case(session: Session, decision_id: str) -> AppealCase | None:
    return session.exec(
        select(AppealCase).where(AppealCase.decision_id == decision_id, AppealCase.status != CLOSED)
    ).first()


def _documents(settings: Settings, evidence: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each piece of evidence with its document's sha256 and size (the document is not kept)."""
    recorded = []
    for i, item in enumerate(evidence):
        entry: dict[str, Any] = {"description": item["description"]}
        if item.get("document_base64") is not None:
            try:
                data = base64.b64decode(item["document_base64"], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InvalidInput.at(f"evidence.{i}.document_base64", "is not base64") from exc
            if len(data) > settings.appeal_max_document_bytes:
                raise InvalidInput.at(
                    f"evidence.{i}.document_base64",
                    f"is {len(data)} bytes; at most {settings.appeal_max_document_bytes}",
                )
            entry |= {
                "filename": item.get("filename"),
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
            }
        recorded.append(entry)
    return recorded


def open_case(
    session: Session,
    serving: Serving,
    settings: Settings,
    decision_id: str,
    statement: str,
    overrides: dict[str, Any],
    evidence: list[dict[str, Any]],
    principal: Principal,
    now: datetime,
) -> AppealCase:
    logged = explain_service.logged_decision(session, decision_id)
    record = logged.record
    if record.kind != "decision":
        raise Conflict(f"an appeal contests a decision, and this record is a {record.kind}")
    if _open_case(session, decision_id) is not None:
        raise Conflict("the decision has an open appeal already: one case at a time")
    if overrides:  # the corrections must be valid inputs of the model (422 naming them)
        explain_service.what_if(session, serving, decision_id, overrides, principal)
    case = AppealCase(
        case_id=str(uuid.uuid4()),
        decision_id=decision_id,
        model=str(record.model),
        version=int(record.version or 0),
        status=OPEN,
        opened_at=now,
        opened_by=principal.key_id,
        due_at=now + timedelta(days=settings.appeal_deadline_days),
        statement=statement,
        overrides=overrides,
        evidence=_documents(settings, evidence),
    )
    try:
        with session.begin_nested():
            session.add(case)
    except IntegrityError as exc:  # opened concurrently by another request
        raise Conflict("the decision has an open appeal already: one case at a time") from exc
    events.record(
        session,
        principal,
        "appeal.opened",
        decision_id=decision_id,
        subject=case.case_id,
        at=now,
        detail={
            "statement_sha256": hashlib.sha256(statement.encode()).hexdigest(),
            "overrides": overrides,
            "evidence": case.evidence,
            "due_at": case.due_at.isoformat(),
        },
    )
    access.record(session, principal, "appeal.open", target=decision_id)
    return case


def get_case(session: Session, case_id: str, principal: Principal, action: str) -> AppealCase:
    """A case, for a role that reads every case or for the key that opened it (anyone else is
    told it does not exist)."""
    case = session.exec(select(AppealCase).where(AppealCase.case_id == case_id)).first()
    if case is None or (principal.role not in READS_ALL and case.opened_by != principal.key_id):
        raise NotFound(f"no appeal {case_id}")
    access.record(session, principal, action, target=case.decision_id, params={"case": case_id})
    return case


def list_cases(
    session: Session, principal: Principal, page: Page, status: str | None
) -> list[AppealCase]:
    query = select(AppealCase).order_by(col(AppealCase.id).desc()).limit(page.limit)
    if page.cursor is not None:
        query = query.where(col(AppealCase.id) < page.cursor)
    if status is not None:
        query = query.where(AppealCase.status == status)
    if principal.role not in READS_ALL:
        query = query.where(AppealCase.opened_by == principal.key_id)
    rows = list(session.exec(query).all())
    access.record(session, principal, "appeal.list", params={"status": status}, rows=len(rows))
    return rows


def assign(
    session: Session, case_id: str, reviewer: str, principal: Principal, now: datetime
) -> AppealCase:
    case = get_case(session, case_id, principal, "appeal.assign")
    if case.status not in (OPEN, UNDER_REVIEW):
        raise Conflict(f"the case is {case.status}: it can no longer be assigned")
    key = session.exec(select(ApiKey).where(ApiKey.key_id == reviewer)).first()
    if key is None or not auth_service.is_active(key, now):
        raise InvalidInput.at("reviewer", "is not an active API key")
    if key.role not in {r.value for r in REVIEWER_ROLES}:
        raise InvalidInput.at("reviewer", f"has the role {key.role}; a reviewer or compliance key")
    if reviewer == case.opened_by:
        raise InvalidInput.at("reviewer", "opened this case, and cannot review it")
    case.status, case.reviewer = UNDER_REVIEW, reviewer
    case.assigned_at, case.assigned_by = now, principal.key_id
    session.add(case)
    events.record(
        session,
        principal,
        "appeal.assigned",
        decision_id=case.decision_id,
        subject=case_id,
        at=now,
        detail={"reviewer": reviewer},
    )
    return case


def review(
    session: Session,
    serving: Serving,
    explainers: explain_service.Explainers,
    case: AppealCase,
    principal: Principal,
) -> dict[str, Any]:
    """What the reviewer sees: the original decision, the replay with the corrected data (score,
    label, reasons and SHAP before and after), the counterfactuals, and whether the input was out
    of distribution."""
    decision_id = case.decision_id
    logged = explain_service.logged_decision(session, decision_id)
    version, schema = _version_of(session, logged.record)
    seed = explain_service.recorded_seed(version)
    before = explain_service.explain(
        session, explainers, decision_id, "shap", {"seed": seed}, principal
    )
    replay = explain_service.what_if(session, serving, decision_id, case.overrides, principal)
    corrected = canonical_features(schema, {**logged.features, **case.overrides})
    after_label = replay["replay"]["label"]
    after = explainers.compute(
        explain_service.Logged(
            record=logged.record,
            content={**logged.content, "features": corrected, "label": after_label},
        ),
        "shap",
        {"seed": seed},
    )
    counterfactual = explain_service.explain(
        session, explainers, decision_id, "counterfactual", {"k": 3, "seed": None}, principal
    )
    record: DecisionRecord = logged.record

    def reasons_of(attributions: dict[str, Any], label: Any, features: Any) -> list[Any]:
        found = reason_codes.adverse_action_reasons(
            schema, attributions, label, schema.favourable, features
        )
        return list(found["reasons"])

    return {
        "case_id": case.case_id,
        "decision_id": decision_id,
        "model": logged.model,
        "overrides": replay["overrides"],
        "before": {
            "label": logged.content.get("label"),
            "favourable": schema.is_favourable(logged.content.get("label")),
            "score": logged.content.get("score"),
            "reasons": reasons_of(before, logged.content.get("label"), logged.features),
            "shap": before.get("values"),
        },
        "after": {
            "label": after_label,
            "favourable": schema.is_favourable(after_label),
            "score": replay["replay"]["score"],
            "reasons": reasons_of(after, after_label, corrected),
            "shap": after.get("values"),
        },
        "label_changed": replay["label_changed"],
        "counterfactuals": counterfactual.get("counterfactuals") or [],
        "out_of_distribution": {
            "score": record.outlier_score,
            "is_outlier": record.is_outlier,
        },
        "shap_seed": seed,
    }


def decide(
    session: Session,
    serving: Serving,
    explainers: explain_service.Explainers,
    case_id: str,
    outcome: str,
    rationale: str,
    label: str | None,
    principal: Principal,
    now: datetime,
) -> AppealCase:
    case = get_case(session, case_id, principal, "appeal.decide")
    if principal.key_id == case.opened_by:
        raise Forbidden("the key that opened a case cannot decide it")
    if case.status != UNDER_REVIEW:
        raise Conflict(f"the case is {case.status}: only a case under review is decided")
    if principal.key_id != case.reviewer:
        raise Forbidden("only the assigned reviewer decides the case")
    seen = review(session, serving, explainers, case, principal)
    logged = explain_service.logged_decision(session, case.decision_id)
    _version, schema = _version_of(session, logged.record)
    human = None
    if outcome == "overturned":
        human = str(label if label is not None else schema.favourable)
        if str(human) == str(logged.content.get("label")):
            raise InvalidInput.at("label", "is the original decision: an overturn changes it")
        if str(human) not in {str(c) for c in schema.classes}:
            raise InvalidInput.at("label", f"is not one of the model's classes {schema.classes}")
    elif label is not None:
        raise InvalidInput.at("label", "is given only with an overturn")
    case.status, case.outcome, case.rationale = DECIDED, outcome, rationale
    case.decided_at, case.decided_by, case.human_label = now, principal.key_id, human
    case.review = {
        "before": {k: seen["before"][k] for k in ("label", "score", "reasons")},
        "after": {k: seen["after"][k] for k in ("label", "score", "reasons")},
        "overrides": seen["overrides"],
    }
    session.add(case)
    events.record(
        session,
        principal,
        "appeal.decided",
        decision_id=case.decision_id,
        subject=case_id,
        at=now,
        detail={
            "outcome": outcome,
            "rationale_sha256": hashlib.sha256(rationale.encode()).hexdigest(),
            "human_label": human,
            "original_label": logged.content.get("label"),
            "original_record_hash": logged.record.record_hash,
        },
    )
    return case


def close(session: Session, case_id: str, principal: Principal, now: datetime) -> AppealCase:
    case = get_case(session, case_id, principal, "appeal.close")
    if case.status != DECIDED:
        raise Conflict(f"the case is {case.status}: only a decided case is closed")
    if principal.role not in (Role.compliance, Role.admin) and principal.key_id != case.reviewer:
        raise Forbidden("the reviewer or compliance closes a case")
    case.status, case.closed_at, case.closed_by = CLOSED, now, principal.key_id
    session.add(case)
    events.record(
        session,
        principal,
        "appeal.closed",
        decision_id=case.decision_id,
        subject=case_id,
        at=now,
        detail={"outcome": case.outcome},
    )
    return case


def public(case: AppealCase, now: datetime) -> dict[str, Any]:
    waiting = case.status in (OPEN, UNDER_REVIEW)
    return {
        "case_id": case.case_id,
        "decision_id": case.decision_id,
        "model": {"name": case.model, "version": case.version},
        "status": case.status,
        "opened_at": case.opened_at,
        "opened_by": case.opened_by,
        "due_at": case.due_at,
        "overdue": waiting and now > case.due_at,
        "statement": case.statement,
        "overrides": case.overrides,
        "evidence": case.evidence,
        "reviewer": case.reviewer,
        "assigned_at": case.assigned_at,
        "outcome": case.outcome,
        "rationale": case.rationale,
        "decided_at": case.decided_at,
        "decided_by": case.decided_by,
        "human_label": case.human_label,
        "review": case.review,
        "closed_at": case.closed_at,
        "letter": case.letter,
    }


def _by_group(
    session: Session, cases: list[AppealCase], attribute: str, min_size: int
) -> list[dict[str, Any]]:
    """The overturn rate of decided cases by a protected attribute of their decisions (from the
    logged context): each group with its 95% Wilson interval, marked when it is below the
    minimum size, as the fairness report marks groups. No verdict: an interval says how little a
    small group shows."""
    decided = [c for c in cases if c.decided_at is not None]
    contexts = dict(
        session.exec(
            select(DecisionRecord.decision_id, DecisionRecord.context).where(
                col(DecisionRecord.decision_id).in_([c.decision_id for c in decided])
            )
        ).all()
    )
    groups: dict[str, list[bool]] = {}
    for case in decided:
        value = (contexts.get(case.decision_id) or {}).get(attribute)
        name = "missing" if value is None else str(value)
        groups.setdefault(name, []).append(case.outcome == "overturned")
    result = []
    for name, flags in sorted(groups.items()):
        interval = wilson(sum(flags), len(flags))
        result.append(
            {
                "group": name,
                "decided": len(flags),
                "overturned": sum(flags),
                "overturn_rate": sum(flags) / len(flags),
                "overturn_rate_ci95": list(interval) if interval else None,
                "below_minimum_size": len(flags) < min_size,
            }
        )
    return result


def oversight(
    session: Session,
    settings: Settings,
    principal: Principal,
    now: datetime,
    attribute: str | None = None,
) -> dict[str, Any]:
    """Human oversight (EU AI Act Art. 14), per model version: cases opened, decided and
    overturned, the overturn rate with its 95% Wilson interval, the median days to decide, the
    overdue cases, and the features most often corrected in overturned cases; with
    ``attribute`` (compliance), the overturn rate by that protected group."""
    cases = list(session.exec(select(AppealCase)).all())
    by_version: dict[tuple[str, int], list[AppealCase]] = {}
    for case in cases:
        by_version.setdefault((case.model, case.version), []).append(case)
    versions = []
    for (model, version), group in sorted(by_version.items()):
        decided = [c for c in group if c.decided_at is not None]
        overturned = [c for c in decided if c.outcome == "overturned"]
        days = [(c.decided_at - c.opened_at).total_seconds() / 86400 for c in decided]  # type: ignore[operator]
        interval = wilson(len(overturned), len(decided)) if decided else None
        corrected = Counter(name for c in overturned for name in c.overrides)
        versions.append(
            {
                "model": model,
                "version": version,
                "opened": len(group),
                "decided": len(decided),
                "overturned": len(overturned),
                "overturn_rate": len(overturned) / len(decided) if decided else None,
                "overturn_rate_ci95": list(interval) if interval else None,
                "median_days_to_decide": statistics.median(days) if days else None,
                "overdue": sum(
                    1 for c in group if c.status in (OPEN, UNDER_REVIEW) and now > c.due_at
                ),
                "most_corrected_in_overturns": [
                    {"feature": name, "cases": n} for name, n in corrected.most_common(5)
                ],
                "by_group": None
                if attribute is None
                else _by_group(session, group, attribute, settings.fairness_min_group_size),
            }
        )
    access.record(
        session, principal, "appeal.oversight", params={"attribute": attribute}, rows=len(cases)
    )
    return {
        "attribute": attribute,
        "min_group_size": settings.fairness_min_group_size,
        "versions": versions,
        "deadline_days": settings.appeal_deadline_days,
        "as_of": now,
    }


LETTER_TEMPLATE = "letter.html"


def letter(
    session: Session, settings: Settings, case_id: str, principal: Principal, now: datetime
) -> AppealCase:
    """The applicant's letter on a decided case, made once (HTML and PDF, the template versioned
    as notices' are) and stored, with a ``case`` chain record of its hashes: asked again, it is
    the same letter. It names no protected attribute, and shows scores only when
    ``GOV_APPEAL_LETTER_SHOWS_SCORE`` is set."""
    case = get_case(session, case_id, principal, "appeal.letter")
    if case.decided_at is None:
        raise Conflict(f"the case is {case.status}: there is no decision to write about yet")
    if case.letter is not None:
        if case.letter_html is None:
            raise Conflict(
                "the letter was purged by retention: its date, template and hashes remain, its "
                "document does not"
            )
        return case
    record = get_decision(session, case.decision_id)
    _version, schema = _version_of(session, record)
    words = decision_words(schema)
    seen = case.review or {}
    corrections = [
        {
            "feature": notices.feature_words(name),
            "from": notices.value_words(move.get("from"), move.get("from")) or "nothing",
            "to": notices.value_words(move.get("to"), move.get("to")) or "nothing",
        }
        for name, move in sorted((seen.get("overrides") or {}).items())
    ]
    scores = None
    if settings.appeal_letter_shows_score:
        before, after = (seen.get(k, {}).get("score") for k in ("before", "after"))
        scores = {
            "before": None if before is None else round(float(before), 3),
            "after": None if after is None else round(float(after), 3),
        }
    content = {
        "case_id": case.case_id,
        "decision_id": case.decision_id,
        "applicant_reference": record.subject_id or case.decision_id,
        "decision_date": record.created_at.date().isoformat(),
        "opened_date": case.opened_at.date().isoformat(),
        "decided_date": case.decided_at.date().isoformat(),
        "date": now.date().isoformat(),
        "outcome": case.outcome,
        "original_decision": words["unfavourable"]
        if schema.is_favourable(record.label) is False
        else class_in_words(schema, record.label),
        "new_decision": words["favourable"]
        if case.human_label is not None and schema.is_favourable(case.human_label)
        else class_in_words(schema, case.human_label),
        "rationale": case.rationale,
        "corrections": corrections,
        "scores": scores,
        "creditor": {"name": settings.creditor_name, "address": settings.creditor_address},
    }
    template = templating.current(session, settings, LETTER_TEMPLATE)
    html = templating.render_html(template, l=content)
    pdf = templating.render_pdf(html)
    made = {
        "made_at": now.isoformat(),
        "made_by": principal.key_id,
        "template": {"name": template.name, "version": template.version, "sha256": template.sha256},
        "html_sha256": templating.sha256(html),
        "pdf_sha256": templating.sha256(pdf),
    }
    stored = session.execute(
        sa.update(AppealCase)
        .where(col(AppealCase.id) == case.id, col(AppealCase.letter_html).is_(None))
        .values(letter=made, letter_html=html, letter_pdf=pdf)
    )
    if stored.rowcount == 1:  # type: ignore[attr-defined]
        events.record(
            session,
            principal,
            "appeal.letter",
            decision_id=case.decision_id,
            subject=case.case_id,
            at=now,
            detail=made,
        )
    # Made here, or by a request at the same moment: either way, the one stored.
    session.refresh(case)
    return case
