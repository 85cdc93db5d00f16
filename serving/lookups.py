"""Reading logged decisions back, with protected attributes redacted for roles without access.

A role other than admin or compliance sees only the context keys declared public (by the model
version's spec or the endpoint's configuration), never a protected attribute of the decision's
model.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlmodel import Session, col, select

from core.auth.models import Role
from core.auth.schemas import Principal
from core.errors import Conflict, InvalidInput, NotFound
from lineage import registry
from serving.models import DecisionRecord, Endpoint, EndpointConfig
from serving.payload import DecisionPayload
from serving.schemas import DecisionRecordPublic, EndpointConfigDocument, ModelRef
from serving.state import Serving

PRIVILEGED = {Role.admin, Role.compliance}


def get_record(session: Session, decision_id: str) -> DecisionRecord:
    try:
        uuid.UUID(decision_id)
    except ValueError:
        raise InvalidInput(
            "a decision id is a UUID", details=[{"field": "decision_id", "message": "not a UUID"}]
        ) from None
    record = session.exec(
        select(DecisionRecord).where(DecisionRecord.decision_id == decision_id)
    ).first()
    if record is None:
        raise NotFound(f"no decision {decision_id}", details={"decision_id": decision_id})
    return record


def get_decision(session: Session, decision_id: str) -> DecisionRecord:
    """A logged decision (live or shadow). A rejected attempt is not a decision: 409."""
    record = get_record(session, decision_id)
    if record.kind == "rejected":
        raise Conflict(
            f"{decision_id} is a rejected request, not a decision: it was never scored",
            code="not_a_decision",
            details={"decision_id": decision_id, "kind": "rejected"},
        )
    if record.payload is None:
        raise Conflict(
            f"decision {decision_id} was purged under the retention policy; only its hash remains",
            code="purged",
            details={"decision_id": decision_id, "record_hash": record.record_hash},
        )
    return record


def endpoint_public_context(
    session: Session, endpoint: str, serving: Serving | None = None
) -> frozenset[str]:
    """The context keys the endpoint's current configuration declares public: from the
    per-process cache when ``serving`` is given, else in one query."""
    if serving is not None:
        try:
            return frozenset(serving.config_for(endpoint).public_context)
        except NotFound:
            return frozenset()
    stored = session.exec(
        select(EndpointConfig.config)
        .join(Endpoint, col(Endpoint.id) == EndpointConfig.endpoint_id)
        .where(Endpoint.name == endpoint)
        .order_by(col(EndpointConfig.id).desc())
        .limit(1)
    ).first()
    return frozenset(EndpointConfigDocument.of(stored).public_context if stored else ())


def visible_context(
    session: Session,
    record: DecisionRecord,
    view: registry.VersionView | None,
    serving: Serving | None,
) -> frozenset[str]:
    """The context keys a role without access to protected attributes sees: an allowlist, the
    keys the model version's spec or the endpoint declares public, less the model's protected
    attributes. Without a model version, nothing shows."""
    if view is None:
        return frozenset()
    public = view.public_context | endpoint_public_context(session, record.endpoint, serving)
    return public - frozenset(view.protected)


def decision_public(
    session: Session,
    record: DecisionRecord,
    principal: Principal,
    serving: Serving | None = None,
) -> DecisionRecordPublic:
    """A record as ``principal`` may read it. Its fields come from the hashed content; once
    retention purged that, only the columns remain."""
    payload = DecisionPayload.from_content(json.loads(record.payload)) if record.payload else None
    model = payload.model if payload is not None else None
    view = registry.version_view(session, model.name, model.version) if model else None
    context, redacted = _shown_context(session, record, payload, principal, view, serving)
    outlier = payload.outlier if payload is not None else None
    rejection = payload.rejection if payload is not None else None
    return DecisionRecordPublic(
        decision_id=record.decision_id,
        seq=record.seq,
        kind=record.kind,
        created_at=record.created_at,
        endpoint=record.endpoint,
        model=ModelRef(name=model.name, version=model.version, sha256=model.sha256)
        if model
        else None,
        route=record.route,
        subject_id=payload.subject_id if payload is not None else None,
        features=payload.features if payload is not None else None,
        context=context,
        label=payload.label if payload is not None else None,
        score=payload.score if payload is not None else None,
        outlier_score=outlier.score if outlier is not None else None,
        is_outlier=outlier.is_outlier if outlier is not None else None,
        latency_ms=payload.latency_ms if payload is not None else None,
        key_id=record.key_id,
        parent_decision_id=record.parent_decision_id,
        shadows=_shadows_of(session, record.decision_id),
        reason=rejection.reason() if rejection is not None else None,
        redacted=redacted,
        record_hash=record.record_hash,
        lineage=view.lineage if view is not None else None,
    )


def _shown_context(
    session: Session,
    record: DecisionRecord,
    payload: DecisionPayload | None,
    principal: Principal,
    view: registry.VersionView | None,
    serving: Serving | None,
) -> tuple[dict[str, Any] | None, list[str]]:
    """The context this principal sees (None for a rejected request: there was none), and the
    keys hidden from it."""
    if payload is not None and payload.kind == "rejected":
        return None, []
    context = dict((payload.context if payload is not None else None) or {})
    if principal.role in PRIVILEGED or not context:
        return context, []
    visible = visible_context(session, record, view, serving)
    redacted = sorted(k for k in context if k not in visible)
    for key in redacted:
        context.pop(key)
    return context, redacted


def _shadows_of(session: Session, decision_id: str) -> list[str]:
    return list(
        session.exec(
            select(DecisionRecord.decision_id).where(
                DecisionRecord.parent_decision_id == decision_id
            )
        ).all()
    )
