"""Stored alerts, and the scan of the decision log that raises boundary-probing alerts.

The scan looks at the last ``GOV_PROBE_WINDOW_S`` seconds of live decisions. One aggregate query
finds the keys with enough decisions on one model version; only their decisions near that
version's threshold are read, and ``probing.near_duplicates`` decides. A background thread runs
the scan every ``GOV_PROBE_SCAN_INTERVAL_S`` seconds; ``POST /api/v1/audit/alerts/scan`` runs it
at once.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from governance.audit.models import Alert
from governance.audit.probing import ProbeRules, near_duplicates
from governance.config import Settings
from governance.db import transaction, utcnow
from governance.pagination import Page

log = logging.getLogger("govern.alerts")

PROBING = "probing"
MAX_ROWS_PER_KEY = 5000
EXAMPLES = 10
# Serializes scans across worker processes on PostgreSQL, so one episode is one alert.
_SCAN_LOCK = 0x676F76_616C7274


class AlertPublic(BaseModel):
    alert_id: str
    kind: str
    key_id: str
    endpoint: str
    model: str | None
    version: int | None
    first_seen_at: datetime
    last_seen_at: datetime
    requests: int
    detail: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def alert_public(alert: Alert) -> AlertPublic:
    return AlertPublic.model_validate(alert, from_attributes=True)


def rules_of(settings: Settings) -> ProbeRules:
    return ProbeRules(
        window_s=settings.probe_window_s,
        min_requests=settings.probe_min_requests,
        score_band=settings.probe_score_band,
        near_distance=settings.probe_near_distance,
    )


def scan(session: Session, settings: Settings, now: datetime | None = None) -> list[Alert]:
    """Raise or extend a probing alert for every key that matches the rules now."""
    from lineage.service import get_version
    from serving import metrics
    from serving.models import DecisionRecord as D

    rules = rules_of(settings)
    now = now or utcnow()
    start = now - timedelta(seconds=rules.window_s)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCAN_LOCK})
    in_window = (
        col(D.kind) == "decision",
        col(D.created_at) >= start,
        col(D.created_at) <= now,
    )
    candidates = session.exec(
        select(D.key_id, D.endpoint, D.model, D.version)
        .where(*in_window, col(D.model).is_not(None), col(D.score).is_not(None))
        .group_by(col(D.key_id), col(D.endpoint), col(D.model), col(D.version))
        .having(sa.func.count() >= rules.min_requests)
    ).all()
    raised = []
    for key_id, endpoint, model, version in candidates:
        assert model is not None
        assert version is not None
        _registered, found = get_version(session=session, name=model, version=version)
        threshold = float(found.input_schema.get("threshold", 0.5))
        rows = [
            (decision_id, float(score or 0.0), dict(features or {}), at)
            for decision_id, score, features, at in session.exec(
                select(D.decision_id, D.score, D.features, D.created_at)
                .where(
                    *in_window,
                    D.key_id == key_id,
                    D.endpoint == endpoint,
                    D.model == model,
                    D.version == version,
                    col(D.score) >= threshold - rules.score_band,
                    col(D.score) <= threshold + rules.score_band,
                    col(D.features).is_not(None),
                )
                .order_by(col(D.created_at).desc())
                .limit(MAX_ROWS_PER_KEY)
            ).all()
        ]
        if len(rows) < rules.min_requests:
            continue
        near = near_duplicates(found.input_schema, [r[2] for r in rows], rules.near_distance)
        if near < rules.min_requests:
            continue
        scores = [r[1] for r in rows]
        detail = {
            "rule": f"at least {rules.min_requests} near-duplicate inputs scored within "
            f"{rules.score_band} of the threshold in {rules.window_s:g}s",
            "threshold": threshold,
            "score_band": rules.score_band,
            "near_distance": rules.near_distance,
            "window_s": rules.window_s,
            "near_threshold": len(rows),
            "near_duplicates": near,
            "score_range": [min(scores), max(scores)],
            "examples": [r[0] for r in rows[:EXAMPLES]],
        }
        first = min(r[3] for r in rows)
        last = max(r[3] for r in rows)
        alert = session.exec(
            select(Alert)
            .where(
                Alert.kind == PROBING,
                Alert.key_id == key_id,
                Alert.endpoint == endpoint,
                Alert.model == model,
                Alert.version == version,
                col(Alert.last_seen_at) >= start,
            )
            .order_by(col(Alert.id).desc())
            .limit(1)
        ).first()
        if alert is None:
            alert = Alert(
                alert_id=str(uuid.uuid4()),
                kind=PROBING,
                key_id=key_id,
                endpoint=endpoint,
                model=model,
                version=version,
                first_seen_at=first,
                last_seen_at=last,
                requests=near,
                detail=detail,
            )
            metrics.PROBING_ALERTS.labels(endpoint).inc()
            log.warning("probing alert: key %s on %s %s v%s", key_id, endpoint, model, version)
        else:
            alert.last_seen_at = max(alert.last_seen_at, last)
            alert.requests = max(alert.requests, near)
            alert.detail = detail
            alert.updated_at = utcnow()
        session.add(alert)
        raised.append(alert)
    session.flush()
    return raised


def list_alerts(
    session: Session,
    page: Page,
    *,
    kind: str | None = None,
    key_id: str | None = None,
    endpoint: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Alert]:
    """Newest first; ``since``/``until`` select alerts whose episode overlaps the interval."""
    query = select(Alert).order_by(col(Alert.id).desc()).limit(page.limit)
    if page.cursor is not None:
        query = query.where(col(Alert.id) < page.cursor)
    if kind is not None:
        query = query.where(Alert.kind == kind)
    if key_id is not None:
        query = query.where(Alert.key_id == key_id)
    if endpoint is not None:
        query = query.where(Alert.endpoint == endpoint)
    if since is not None:
        query = query.where(col(Alert.last_seen_at) >= since)
    if until is not None:
        query = query.where(col(Alert.first_seen_at) <= until)
    return list(session.exec(query).all())


class Scanner:
    """Runs ``scan`` every ``GOV_PROBE_SCAN_INTERVAL_S`` seconds on a daemon thread."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.settings.probe_scan_interval_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="govern-alerts", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.settings.probe_scan_interval_s):
            try:
                with transaction(self.sessions) as session:
                    scan(session, self.settings)
            except Exception as exc:  # the database may be down; the next scan retries
                log.warning("probing scan failed: %s", exc)
