"""One document about one decision, for an appeal or an examiner: JSON, or HTML to hand over.

It holds the decision record (its whole context only for compliance and admin; other roles see
the keys declared public, never a protected attribute), the model version with its lineage, the
adverse-action reason codes, the SHAP attributions, a counterfactual, the replay of the logged
input on the same model, and the verification of this record's place in the hash chain.
Explanations come from storage when they were computed before, so the same dossier says the same
thing each time it is fetched.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from explain import service as explain_service
from governance.audit import access
from governance.audit.chain import GENESIS, content_hash, record_hash
from governance.audit.models import AuditCheckpoint
from governance.auth.schemas import Principal
from serving import service as serving_service
from serving.decision_log import CHAIN
from serving.models import DecisionRecord

DECISIONS: sa.Table = DecisionRecord.__table__  # type: ignore[attr-defined]


def chain_check(session: Session, record: DecisionRecord) -> dict[str, Any]:
    """This record's own hashes, its links to both neighbours, and the checkpoint covering it."""
    previous = session.execute(
        sa.select(DECISIONS.c.record_hash).where(DECISIONS.c.seq == record.seq - 1)
    ).scalar()
    following = session.execute(
        sa.select(DECISIONS.c.prev_hash).where(DECISIONS.c.seq == record.seq + 1)
    ).scalar()
    content_ok = record.payload is None or content_hash(record.payload) == record.content_hash
    self_ok = record.record_hash == record_hash(
        CHAIN, record.seq, record.prev_hash, record.content_hash
    )
    expected_previous = GENESIS if record.seq == 1 else previous
    linked_back = record.prev_hash == expected_previous
    linked_forward = following is None or following == record.record_hash
    checkpoint = session.exec(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.chain == CHAIN, col(AuditCheckpoint.seq) >= record.seq)
        .order_by(col(AuditCheckpoint.seq))
        .limit(1)
    ).first()
    return {
        "chain": CHAIN,
        "seq": record.seq,
        "record_hash": record.record_hash,
        "content_matches_hash": content_ok,
        "record_hash_matches": self_ok,
        "linked_to_previous": linked_back,
        "linked_to_next": linked_forward if following is not None else None,
        "verified": content_ok and self_ok and linked_back and linked_forward,
        "signed_checkpoint": None
        if checkpoint is None
        else {"seq": checkpoint.seq, "signed_at": checkpoint.signed_at.isoformat()},
        "method": "sha256 over the canonical JSON content, and over chain|seq|prev_hash|content "
        "hash for the record; `govern audit verify` checks the whole chain",
    }


def build(
    session: Session,
    serving: serving_service.Serving,
    explainers: explain_service.Explainers,
    decision_id: str,
    principal: Principal,
) -> dict[str, Any]:
    record = serving_service.get_decision(session, decision_id)
    public = serving_service.decision_public(session, record, principal, serving)
    reasons = explain_service.reasons_for(session, explainers, decision_id, principal)
    shap = explain_service.explain(
        session, explainers, decision_id, "shap", {"seed": None}, principal
    )
    counterfactual = explain_service.explain(
        session, explainers, decision_id, "counterfactual", {"k": 3, "seed": None}, principal
    )
    replay = explain_service.replay(session, serving, decision_id, {}, principal)
    document = {
        "decision": public.model_dump(mode="json", exclude={"lineage"}),
        "model": public.lineage,
        "reasons": {k: reasons[k] for k in ("favourable", "label", "reasons") if k in reasons}
        | {"source": reasons.get("source")},
        "shap": {
            k: shap.get(k)
            for k in ("base_value", "values", "output", "space", "method", "seed", "versions")
        },
        "counterfactual": {
            "from_label": counterfactual.get("from_label"),
            "target_label": counterfactual.get("target_label"),
            "best": (counterfactual.get("counterfactuals") or [None])[0],
            "constraints": counterfactual.get("constraints"),
            "seed": counterfactual.get("seed"),
        },
        "replay": {
            "logged": replay["logged"],
            "replay": replay["replay"],
            "reproduces_logged_decision": replay["reproduces_logged_decision"],
        },
        "chain": chain_check(session, record),
        "redacted": public.redacted,
    }
    access.record(session, principal, "dossier.read", target=decision_id)
    return document
