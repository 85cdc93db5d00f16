"""The model inventory, for model risk management (SR 26-2 / OCC Bulletin 2026-13, which
superseded SR 11-7 / OCC 2011-12 in April 2026; the README maps its fields to both): every model
version, its stage and history, owner, where it served and when, its decision count, last
rebuild and last fairness report.

Where a version served comes from the endpoints' configuration history (every change is a row),
replayed into intervals. ``at`` answers "what was in production on date D": stages and serving
are replayed up to that moment.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.audit.models import AccessRecord
from lineage import registry
from lineage.models import ModelVersion, Rebuild, RegisteredModel, Stage
from serving.models import DecisionRecord, Endpoint, EndpointConfig
from serving.schemas import EndpointConfigDocument

DECISIONS: sa.Table = DecisionRecord.__table__  # type: ignore[attr-defined]
STATUSES = ("in_use", "in_development", "retired")


def serving_intervals(session: Session) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """(model, version) -> every interval in which an endpoint routed to it, or shadowed it."""
    names = {e.id: e.name for e in session.exec(select(Endpoint)).all()}
    rows = session.exec(
        select(EndpointConfig).order_by(col(EndpointConfig.endpoint_id), col(EndpointConfig.id))
    ).all()
    by_endpoint: dict[int, list[EndpointConfig]] = defaultdict(list)
    for row in rows:
        by_endpoint[row.endpoint_id].append(row)
    intervals: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for endpoint_id, configs in by_endpoint.items():
        for i, config in enumerate(configs):
            until = configs[i + 1].created_at if i + 1 < len(configs) else None
            document = EndpointConfigDocument.of(config.config)
            targets = [(t.model, t.version, t.name, t.weight) for t in document.routes] + [
                (t.model, t.version, "shadow", None) for t in document.shadows
            ]
            for model, version, route, weight in targets:
                intervals[(model, version)].append(
                    {
                        "endpoint": names[endpoint_id],
                        "route": route,
                        "weight": weight,
                        "from": config.created_at,
                        "until": until,
                    }
                )
    return intervals


def _active(interval: dict[str, Any], at: datetime | None) -> bool:
    if at is None:
        return interval["until"] is None
    return interval["from"] <= at and (interval["until"] is None or at < interval["until"])


def inventory(
    session: Session, *, status: str | None = None, at: datetime | None = None
) -> list[dict[str, Any]]:
    models = {m.id: m for m in session.exec(select(RegisteredModel)).all()}
    versions = [
        v
        for v in session.exec(
            select(ModelVersion).order_by(col(ModelVersion.model_id), col(ModelVersion.version))
        ).all()
        if at is None or v.created_at <= at
    ]
    stages = registry.stages_at(session, [v.id for v in versions if v.id is not None], at)
    counts = {
        (m, v): n
        for m, v, n in session.execute(
            sa.select(DECISIONS.c.model, DECISIONS.c.version, sa.func.count())
            .where(DECISIONS.c.kind == "decision")
            .where(*([DECISIONS.c.created_at <= at] if at is not None else []))
            .group_by(DECISIONS.c.model, DECISIONS.c.version)
        )
    }
    intervals = serving_intervals(session)
    histories = {m.id: registry.stage_history(session, m) for m in models.values()}
    items = []
    for version in versions:
        assert version.id is not None
        model = models[version.model_id]
        stage = stages[version.id]
        served = intervals.get((model.name, version.version), [])
        serving_now = [i for i in served if _active(i, at)]
        state = (
            "retired"
            if stage is Stage.archived
            else "in_use"
            if stage is Stage.production or serving_now
            else "in_development"
        )
        if status is not None and state != status:
            continue
        items.append(
            {
                "model": model.name,
                "version": version.version,
                "status": state,
                "stage": stage.value,
                "stage_history": [
                    h.model_dump(mode="json")
                    for h in histories[model.id]
                    if h.version == version.version and (at is None or h.at <= at)
                ],
                "owner": version.created_by,
                "source": version.source,
                "created_at": version.created_at,
                "serving": [_interval_public(i) for i in serving_now],
                "served": [_interval_public(i) for i in served if at is None or i["from"] <= at],
                "decisions": int(counts.get((model.name, version.version), 0)),
                "gate_passed": version.gate_passed,
                "last_rebuild": last_rebuild(session, version),
                "last_fairness_report": _last_fairness(session, served),
            }
        )
    return items


def _interval_public(interval: dict[str, Any]) -> dict[str, Any]:
    return {
        "endpoint": interval["endpoint"],
        "route": interval["route"],
        "weight": interval["weight"],
        "from": interval["from"].isoformat(),
        "until": interval["until"].isoformat() if interval["until"] else None,
    }


def last_rebuild(session: Session, version: ModelVersion) -> dict[str, Any] | None:
    found = session.exec(
        select(Rebuild)
        .where(Rebuild.model_version_id == version.id, col(Rebuild.verdict).is_not(None))
        .order_by(col(Rebuild.id).desc())
        .limit(1)
    ).first()
    if found is None:
        return None
    return {
        "id": found.id,
        "verdict": found.verdict,
        "finished_at": found.finished_at.isoformat() if found.finished_at else None,
    }


def _last_fairness(session: Session, served: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest fairness report run on an endpoint while (or after) this version served it."""
    best: AccessRecord | None = None
    for endpoint in {i["endpoint"] for i in served}:
        start = min(i["from"] for i in served if i["endpoint"] == endpoint)
        found = session.exec(
            select(AccessRecord)
            .where(
                AccessRecord.action == "fairness.report",
                AccessRecord.target == endpoint,
                col(AccessRecord.created_at) >= start,
            )
            .order_by(col(AccessRecord.seq).desc())
            .limit(1)
        ).first()
        if found is not None and (best is None or found.seq > best.seq):
            best = found
    if best is None:
        return None
    return {
        "at": best.created_at.isoformat(),
        "endpoint": best.target,
        "by": best.key_id,
        "decisions": best.rows,
    }
