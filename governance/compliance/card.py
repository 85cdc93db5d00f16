"""The model card: what a version is for, what it was trained on, how it performs, by group and
live, whether it passed its gate, where it came from, and whether it rebuilds.

Data scientists read it too: its figures by group follow ``governance.cells`` (small cells
withheld for them, marked for compliance and admin).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from explain import fairness_service
from governance import cells
from governance.auth.schemas import Principal
from governance.compliance.inventory import last_rebuild
from governance.config import Settings
from lineage import service as lineage_service
from lineage.models import ModelVersion, RegisteredModel
from serving.models import DecisionRecord

DECISIONS: sa.Table = DecisionRecord.__table__  # type: ignore[attr-defined]


def _live_fairness(
    session: Session,
    principal: Principal,
    settings: Settings,
    model: RegisteredModel,
    version: ModelVersion,
) -> list[dict[str, Any]]:
    protected = [p["name"] for p in version.input_schema.get("protected", [])]
    if not protected:
        return []
    endpoints = session.execute(
        sa.select(DECISIONS.c.endpoint)
        .where(
            DECISIONS.c.kind == "decision",
            DECISIONS.c.model == model.name,
            DECISIONS.c.version == version.version,
        )
        .distinct()
        .order_by(DECISIONS.c.endpoint)
    ).scalars()
    reports = []
    for endpoint in endpoints:
        report = fairness_service.report(
            session,
            principal,
            endpoint=endpoint,
            attributes=protected,
            bins=[],
            since=None,
            until=None,
            model=model.name,
            version=version.version,
            route=None,
            window=None,
            min_group_size=settings.fairness_min_group_size,
            min_cell_size=settings.min_cell_size,
        )
        live = {k: v for k, v in report.items() if k not in {"training", "filters"}}
        reports.append(cells.fairness_report_for(principal.role, live, settings.min_cell_size))
    return reports


def card(
    session: Session,
    principal: Principal,
    settings: Settings,
    model: RegisteredModel,
    version: ModelVersion,
) -> dict[str, Any]:
    lineage = version.lineage
    spec = lineage.get("spec") or {}
    data = lineage.get("dataset") or {}
    return {
        "model": model.name,
        "version": version.version,
        "description": spec.get("description") or model.description,
        "intended_use": spec.get("intended_use"),
        "owner": version.created_by,
        "stage": lineage_service.current_stage(session, version).value,
        "created_at": version.created_at.isoformat(),
        "data": {
            k: data.get(k)
            for k in ("name", "version", "repo", "path", "commit", "md5", "sha256", "row_count")
        },
        "features": version.input_schema["features"],
        "protected": version.input_schema.get("protected", []),
        "target": version.input_schema.get("target"),
        "threshold": version.input_schema.get("threshold"),
        "metrics": version.metrics,
        "reporting_threshold": settings.min_cell_size,
        "metrics_by_group": cells.metrics_by_group_for(
            principal.role, lineage.get("metrics_by_group") or {}, settings.min_cell_size
        ),
        "live_fairness": _live_fairness(session, principal, settings, model, version),
        "gate": lineage.get("gate"),
        "lineage": lineage_service.lineage_summary(session, version),
        "rebuild": last_rebuild(session, version),
    }
