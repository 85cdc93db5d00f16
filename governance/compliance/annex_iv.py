"""The EU AI Act's technical documentation (Art. 11, Annex IV) for a high-risk credit model,
assembled from what govern already records about one version. Every section says what is
evidenced, by which record (a route that shows it), and what is missing; nothing is filled in
with boilerplate, and a section govern cannot evidence says so.

Sections: the intended purpose; the data and its governance (Art. 10); the design choices and
training; validation and metrics by group; human oversight (Art. 14); logging (Art. 12);
accuracy, robustness and cybersecurity (Art. 15); and the change history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.audit import access
from core.audit.models import Alert
from core.auth.schemas import Principal
from core.config import Settings
from governance.casework import appeals
from governance.changes import events
from governance.compliance import card as model_card
from governance.promotion.models import Promotion
from lineage import registry
from lineage.models import ModelVersion, RegisteredModel
from serving.models import DecisionRecord

EVIDENCED, PARTLY, MISSING = "evidenced", "partly", "missing"
DECISIONS: sa.Table = DecisionRecord.__table__  # type: ignore[attr-defined]


def _section(
    key: str,
    title: str,
    article: str,
    evidence: dict[str, Any],
    records: list[str],
    missing: list[str],
    *,
    has_evidence: bool,
) -> dict[str, Any]:
    status = MISSING if not has_evidence else PARTLY if missing else EVIDENCED
    return {
        "key": key,
        "title": title,
        "article": article,
        "status": status,
        "evidence": evidence,
        "records": records,
        "missing": missing,
    }


def _purpose(base: str, c: dict[str, Any]) -> dict[str, Any]:
    missing = [] if c["intended_use"] else ["the spec states no intended_use"]
    return _section(
        "intended_purpose",
        "Intended purpose",
        "Annex IV 1(a)",
        {
            "description": c["description"],
            "intended_use": c["intended_use"],
            "owner": c["owner"],
            "decision_rule": c["decision_rule"],
        },
        [f"{base}/card"],
        missing,
        has_evidence=bool(c["intended_use"] or c["description"]),
    )


def _data(base: str, c: dict[str, Any], lineage: dict[str, Any]) -> dict[str, Any]:
    data = c["data"]
    missing = []
    if not (data.get("commit") and data.get("sha256")):
        missing.append("the data version's commit and content hash")
    if not lineage.get("split"):
        missing.append("the training and validation split (a model trained elsewhere)")
    if not c["protected"]:
        missing.append("no protected attribute is declared, so no bias examination by group")
    return _section(
        "data",
        "Data and data governance",
        "Art. 10; Annex IV 2(d)",
        {
            "dataset": data,
            "split": lineage.get("split"),
            "protected_attributes": [p["name"] for p in c["protected"]],
            "proxies": c["proxies"],
            "missing_values": c["missing_values"],
        },
        [f"{base}/lineage", f"{base}/card"],
        missing,
        has_evidence=bool(data.get("commit") or data.get("sha256")),
    )


def _design(base: str, version: ModelVersion, lineage: dict[str, Any]) -> dict[str, Any]:
    spec = lineage.get("spec") or {}
    missing = []
    if lineage.get("source") == "external":
        missing.append(
            "how it was trained is what its uploader declared; govern did not run the training"
        )
    elif lineage.get("source") == "mlflow":
        missing.append(
            "how it was trained is what its MLflow run recorded; govern did not run the training"
            " (a rebuild re-runs it from that record)"
        )
        check = (lineage.get("mlflow") or {}).get("data_verification") or {}
        if check.get("status") != "verified":
            missing.append(f"the training data is unverified: {check.get('reason')}")
    if not lineage.get("seeds"):
        missing.append("the random seeds")
    return _section(
        "design",
        "Design choices and training",
        "Annex IV 2(a), 2(b), 2(c)",
        {
            "estimator": lineage.get("estimator"),
            "features": [f.get("name") for f in spec.get("features") or []],
            "transforms": spec.get("transforms"),
            "mitigation": spec.get("mitigation"),
            "seeds": lineage.get("seeds"),
            "spec_sha256": lineage.get("spec_sha256"),
            "environment": {
                "python": (lineage.get("environment") or {}).get("python"),
                "packages": len((lineage.get("environment") or {}).get("packages") or {}),
            },
            "code": lineage.get("code"),
            "artifact_sha256": version.artifact_sha256,
        },
        [f"{base}/lineage"],
        missing,
        has_evidence=bool(lineage.get("estimator")),
    )


def _validation(base: str, c: dict[str, Any]) -> dict[str, Any]:
    missing = []
    if c["gate"] is None:
        missing.append("no promotion gate was recorded")
    if c["rebuild"] is None:
        missing.append("never rebuilt: reproducibility is not shown (POST .../rebuilds)")
    elif c["rebuild"].get("verdict") != "identical":
        missing.append(f"the latest rebuild is {c['rebuild'].get('verdict')}, not identical")
    return _section(
        "validation",
        "Validation, and metrics overall and by group",
        "Annex IV 2(g), 3",
        {
            "metrics": c["metrics"],
            "overfitting": c["overfitting"],
            "metrics_by_group": c["metrics_by_group"],
            "gate": c["gate"],
            "rebuild": c["rebuild"],
            "live_fairness_by_attribute": c["live_fairness_by_attribute"],
        },
        [f"{base}/card", f"{base}/rebuilds", "/api/v1/fairness"],
        missing,
        has_evidence=bool(c["metrics"]),
    )


def _oversight(
    session: Session,
    settings: Settings,
    principal: Principal,
    now: datetime,
    name: str,
    number: int,
) -> dict[str, Any]:
    report = appeals.oversight(session, settings, principal, now)
    mine = next(
        (v for v in report["versions"] if (v["model"], v["version"]) == (name, number)), None
    )
    missing = [] if mine else ["no appeal of this version's decisions has been opened yet"]
    return _section(
        "human_oversight",
        "Human oversight",
        "Art. 14; Annex IV 2(e)",
        {
            "appeals": mine,
            "means": "appeals with the applicant's statement and corrected data, decided by a "
            "reviewer who may overturn; adverse-action notices held when reasons are unstable",
        },
        ["/api/v1/appeals", "/api/v1/appeals/oversight"],
        missing,
        has_evidence=True,
    )


def _logging(session: Session, name: str, number: int) -> dict[str, Any]:
    d = DECISIONS
    row = (
        session.connection()
        .execute(
            sa.select(
                sa.func.count(), sa.func.min(d.c.created_at), sa.func.max(d.c.created_at)
            ).where(d.c.kind == "decision", d.c.model == name, d.c.version == number)
        )
        .one()
    )
    count = int(row[0] or 0)
    missing = [] if count else ["the version has made no decision yet: nothing is logged"]
    return _section(
        "logging",
        "Record-keeping: the decision log",
        "Art. 12",
        {
            "decisions_logged": count,
            "first": row[1].isoformat() if row[1] else None,
            "last": row[2].isoformat() if row[2] else None,
            "how": "every decision is written to a hash-chained log before it is answered "
            "(503 if it cannot be); chains are verified by GET /api/v1/audit/verify",
        },
        [f"/api/v1/decisions?model={name}&version={number}", "/api/v1/audit/verify"],
        missing,
        has_evidence=bool(count),
    )


def _robustness(
    session: Session, lineage: dict[str, Any], name: str, number: int
) -> dict[str, Any]:
    promotion = session.exec(
        select(Promotion)
        .where(
            Promotion.model == name,
            Promotion.version == number,
            col(Promotion.evidence).is_not(None),
        )
        .order_by(col(Promotion.id).desc())
        .limit(1)
    ).first()
    sample = (promotion.evidence or {}).get("robustness") if promotion is not None else None
    alerts = session.exec(
        select(sa.func.count())
        .select_from(Alert)
        .where(Alert.model == name, Alert.version == number)
    ).one()
    detector = lineage.get("outlier_detector")
    missing = ["the security drills are run by the operator (make reliability; RELIABILITY.md)"]
    if sample is None:
        missing.append("no robustness sample: it is taken when a promotion is asked for")
    if detector is None:
        missing.append("no out-of-distribution detector was fitted")
    return _section(
        "robustness",
        "Accuracy, robustness and cybersecurity",
        "Art. 15; Annex IV 2(h)",
        {
            "robustness_sample": sample,
            "robustness_sample_from": promotion.promotion_id if promotion is not None else None,
            "out_of_distribution_detector": None
            if detector is None
            else {k: detector.get(k) for k in ("method", "threshold", "quantile") if k in detector},
            "probing_alerts": int(alerts),
        },
        ["/api/v1/promotions", "/api/v1/audit/alerts", "/api/v1/decisions/{id}/robustness"],
        missing,
        has_evidence=sample is not None or detector is not None,
    )


def _changes(session: Session, model: RegisteredModel, number: int) -> dict[str, Any]:
    name = model.name
    stages = [
        t.model_dump(mode="json")
        for t in registry.stage_history(session, model)
        if t.version == number
    ]
    promotions = session.exec(
        select(Promotion.promotion_id).where(Promotion.model == name, Promotion.version == number)
    ).all()
    steps = [
        {**step, "promotion": promotion_id}
        for promotion_id in promotions
        for step in events.steps(session, "promotion", promotion_id)
    ]
    return _section(
        "changes",
        "Changes over the life cycle",
        "Annex IV 6",
        {"stage_history": stages, "promotion_steps": steps},
        [f"/api/v1/models/{name}/stage-history", "/api/v1/promotions"],
        [],
        has_evidence=bool(stages or steps),
    )


def document(
    session: Session,
    principal: Principal,
    settings: Settings,
    model: RegisteredModel,
    version: ModelVersion,
    now: datetime,
) -> dict[str, Any]:
    name, number = model.name, version.version
    access.record(session, principal, "model.technical_documentation", target=f"{name}/{number}")
    base = f"/api/v1/models/{name}/versions/{number}"
    c = model_card.card(session, principal, settings, model, version)
    lineage = version.lineage or {}
    sections = [
        _purpose(base, c),
        _data(base, c, lineage),
        _design(base, version, lineage),
        _validation(base, c),
        _oversight(session, settings, principal, now, name, number),
        _logging(session, name, number),
        _robustness(session, lineage, name, number),
        _changes(session, model, number),
    ]
    return {
        "model": name,
        "version": number,
        "generated_at": now.isoformat(),
        "regulation": "EU AI Act (Regulation (EU) 2024/1689), Art. 11 and Annex IV",
        "summary": {
            status: [s["key"] for s in sections if s["status"] == status]
            for status in (EVIDENCED, PARTLY, MISSING)
        },
        "sections": sections,
    }
