"""Explain many logged decisions at once: a job on the executor interface.

``explain_many`` takes only settings and plain values, so another executor (Ray, later) can ship
it. It walks the window's decisions in log order, computes and stores each explanation that is
not stored yet (a stored one is left as it is), reports progress after each decision, and
records one entry in the access trail for the whole run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from core.audit import access
from core.auth.models import Role
from core.auth.schemas import Principal
from core.config import Settings
from core.db import make_engine, session_factory, transaction
from core.errors import GovernanceError, InvalidInput
from explain.service import METHODS, Explainers, explanation_for, logged_decision
from serving.models import DecisionRecord
from serving.state import Serving

Progress = Callable[[int, int, str], None]
CLI = Principal(key_id="cli", name="govern explain", role=Role.admin)


@dataclass
class BulkResult:
    total: int = 0
    computed: int = 0
    already_stored: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)


def _quiet(_done: int, _total: int, _message: str) -> None:
    return None


def _window(endpoint: str, since: datetime | None, until: datetime | None) -> Any:
    table = DecisionRecord.__table__  # type: ignore[attr-defined]
    query = (
        sa.select(table.c.seq, table.c.decision_id)
        .where(table.c.endpoint == endpoint, table.c.kind == "decision")
        .where(table.c.payload.is_not(None))
    )
    if since is not None:
        query = query.where(table.c.created_at >= since)
    if until is not None:
        query = query.where(table.c.created_at < until)
    return query.order_by(table.c.seq)


def explain_many(
    settings: Settings,
    endpoint: str,
    method: str,
    params: dict[str, Any],
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Progress = _quiet,
) -> BulkResult:
    if method not in METHODS:
        raise InvalidInput(
            f"unknown method {method!r}",
            details=[{"field": "method", "message": f"one of {', '.join(METHODS)}"}],
        )
    engine = make_engine(settings)
    sessions = session_factory(engine)
    serving = Serving.create(settings, sessions)
    explainers = Explainers.create(serving, sessions, settings, workers=False)
    result = BulkResult()
    try:
        with transaction(sessions) as session:
            ids = [row.decision_id for row in session.execute(_window(endpoint, since, until))]
        result.total = len(ids)
        progress(0, len(ids), f"{len(ids)} decisions on {endpoint}")
        for done, decision_id in enumerate(ids, start=1):
            try:
                with transaction(sessions) as session:
                    logged = logged_decision(session, decision_id)
                    _row, cached = explanation_for(
                        session, explainers, logged, method, params, CLI.key_id
                    )
                if cached:
                    result.already_stored += 1
                else:
                    result.computed += 1
            except GovernanceError as exc:
                result.failed.append({"decision_id": decision_id, "error": exc.message})
            progress(done, len(ids), decision_id)
        with transaction(sessions) as session:
            access.record(
                session,
                CLI,
                f"explanation.{method}.bulk",
                target=endpoint,
                params={
                    **params,
                    "since": since.isoformat() if since else None,
                    "until": until.isoformat() if until else None,
                },
                rows=result.total,
                detail={"computed": result.computed, "failed": len(result.failed)},
            )
    finally:
        serving.shadow_pool.shutdown(wait=False)
        engine.dispose()
    return result
