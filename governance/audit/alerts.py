"""Stored alerts, and the scan of the decision log that raises boundary-probing alerts.

The scan looks at the last ``GOV_PROBE_WINDOW_S`` seconds of live decisions and of replays. A
replay (``POST /decisions/{id}/replay``) scores a logged input again with the caller's changes
and answers the score, so it probes the decision's model version as well as a predict does: it
counts as a request by the replaying key, on that version, whose input is the logged features
with the overrides applied and whose score its access-trail entry holds. Aggregate queries find
the keys with enough decisions and replays on one model version; only their latest requests
(bounded per key) near that version's threshold are read, and ``probing.near_duplicate_mask``
decides. A background thread runs
the scan every ``GOV_PROBE_SCAN_INTERVAL_S`` seconds; ``POST /api/v1/audit/alerts/scan`` runs it
at once.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from core.audit.models import AccessRecord as A
from core.audit.models import Alert
from core.auth.models import Role
from core.auth.schemas import Principal
from core.config import Settings
from core.db import transaction, utcnow
from core.pagination import Page
from governance.audit.probing import ProbeRules, near_duplicate_mask
from governance.audit.schemas import NoticeOverdueDetail, ProbingDetail
from governance.casework import service as notice_clock
from governance.experiments import service as experiments
from governance.promotion import service as promotions
from lineage.input_schema import InputSchema
from lineage.registry import get_version
from serving import metrics
from serving.models import DecisionRecord as D

# Who the roll-out's scheduled looks are recorded as.
ROLLOUT = Principal(key_id="rollout", name="automated roll-out", role=Role.admin)
log = logging.getLogger("govern.alerts")

PROBING = "probing"
# The access-trail action of explain.service.what_if (a replay with changed inputs).
REPLAY = "replay"
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
    detail: ProbingDetail | NoticeOverdueDetail
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


@dataclass(frozen=True)
class Group:
    """One key's requests on one model version, through one endpoint."""

    key_id: str
    endpoint: str
    model: str
    version: int


@dataclass(frozen=True)
class Scored:
    """One request the scan looks at: a live decision, or a replay of one (``replay`` True,
    ``ident`` the replayed decision's id)."""

    ident: str
    score: float
    features: dict[str, Any]
    at: datetime
    replay: bool


def _candidates(
    session: Session, rules: ProbeRules, start: datetime, now: datetime
) -> dict[Group, int]:
    """Groups with at least ``min_requests`` decisions and replays in the window, by count."""
    replays = session.execute(
        sa.select(col(A.key_id), col(D.endpoint), col(D.model), col(D.version), sa.func.count())
        .select_from(A)
        .join(D, col(D.decision_id) == col(A.target))
        .where(
            col(A.action) == REPLAY,
            col(A.created_at) >= start,
            col(A.created_at) <= now,
            col(A.payload).is_not(None),
            col(D.model).is_not(None),
            col(D.version).is_not(None),
            col(D.features).is_not(None),
        )
        .group_by(col(A.key_id), col(D.endpoint), col(D.model), col(D.version))
    ).all()
    counts = {Group(k, e, m, v): n for k, e, m, v, n in replays}
    enough: Any = sa.func.count() >= rules.min_requests
    if counts:  # a key's decisions count with its replays, however few they are
        enough = sa.or_(enough, col(D.key_id).in_(sorted({g.key_id for g in counts})))
    decisions = session.execute(
        sa.select(col(D.key_id), col(D.endpoint), col(D.model), col(D.version), sa.func.count())
        .where(
            col(D.kind) == "decision",
            col(D.created_at) >= start,
            col(D.created_at) <= now,
            col(D.model).is_not(None),
            col(D.score).is_not(None),
        )
        .group_by(col(D.key_id), col(D.endpoint), col(D.model), col(D.version))
        .having(enough)
    ).all()
    for k, e, m, v, n in decisions:
        group = Group(k, e, m, v)
        counts[group] = counts.get(group, 0) + n
    return {g: n for g, n in counts.items() if n >= rules.min_requests}


def _decisions(
    session: Session, group: Group, low: float, high: float, start: datetime, now: datetime
) -> list[Scored]:
    """The group's latest live decisions scored within [low, high], at most MAX_ROWS_PER_KEY."""
    rows = session.execute(
        sa.select(col(D.decision_id), col(D.score), col(D.features), col(D.created_at))
        .where(
            col(D.kind) == "decision",
            col(D.created_at) >= start,
            col(D.created_at) <= now,
            col(D.key_id) == group.key_id,
            col(D.endpoint) == group.endpoint,
            col(D.model) == group.model,
            col(D.version) == group.version,
            col(D.score) >= low,
            col(D.score) <= high,
            col(D.features).is_not(None),
        )
        .order_by(col(D.created_at).desc())
        .limit(MAX_ROWS_PER_KEY)
    ).all()
    return [
        Scored(ident, float(score or 0.0), dict(features or {}), at, replay=False)
        for ident, score, features, at in rows
    ]


def _replays(
    session: Session, group: Group, low: float, high: float, start: datetime, now: datetime
) -> list[Scored]:
    """The group's latest replays (at most MAX_ROWS_PER_KEY) that scored within [low, high].

    A replay scored the decision's logged input with the caller's overrides applied; its access
    trail entry holds the overrides and the score."""
    rows = session.execute(
        sa.select(col(D.decision_id), col(D.features), col(A.payload), col(A.created_at))
        .select_from(A)
        .join(D, col(D.decision_id) == col(A.target))
        .where(
            col(A.action) == REPLAY,
            col(A.key_id) == group.key_id,
            col(A.created_at) >= start,
            col(A.created_at) <= now,
            col(A.payload).is_not(None),
            col(D.endpoint) == group.endpoint,
            col(D.model) == group.model,
            col(D.version) == group.version,
            col(D.features).is_not(None),
        )
        .order_by(col(A.created_at).desc())
        .limit(MAX_ROWS_PER_KEY)
    ).all()
    found = []
    for decision_id, features, payload, at in rows:
        try:
            entry = json.loads(payload)
            score = float(entry["detail"]["score"])
            overrides = dict(entry["params"].get("overrides") or {})
        except (ValueError, TypeError, KeyError, AttributeError):
            continue  # not a replay entry this release wrote; nothing to learn from it
        if low <= score <= high:
            found.append(Scored(decision_id, score, {**(features or {}), **overrides}, at, True))
    return found


def _serialize_scans(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCAN_LOCK})


@dataclass(frozen=True)
class NearThreshold:
    """A group's requests in the window that scored near its version's threshold."""

    input_schema: InputSchema
    threshold: float
    scored: list[Scored]


def _near_threshold(
    session: Session, group: Group, rules: ProbeRules, start: datetime, now: datetime
) -> NearThreshold:
    """The group's decisions and replays scored within ``score_band`` of the threshold."""
    _registered, found = get_version(session=session, name=group.model, version=group.version)
    schema = InputSchema.from_document(found.input_schema)
    threshold = schema.threshold
    low, high = threshold - rules.score_band, threshold + rules.score_band
    scored = _decisions(session, group, low, high, start, now) + _replays(
        session, group, low, high, start, now
    )
    return NearThreshold(schema, threshold, scored)


@dataclass(frozen=True)
class Probing:
    """The requests that match the rules: near the threshold, and which are near-duplicates."""

    threshold: float
    scored: list[Scored]
    mask: list[bool]

    @property
    def near(self) -> int:
        return sum(self.mask)


def _apply_rules(rules: ProbeRules, found: NearThreshold) -> Probing | None:
    """Probing when at least ``min_requests`` requests scored near the threshold and as many of
    them are near-duplicates of another; None otherwise."""
    if len(found.scored) < rules.min_requests:
        return None
    mask = near_duplicate_mask(
        found.input_schema, [r.features for r in found.scored], rules.near_distance
    )
    if sum(mask) < rules.min_requests:
        return None
    return Probing(found.threshold, found.scored, mask)


def _detail(rules: ProbeRules, probing: Probing) -> dict[str, Any]:
    """What an alert says: the rule, the group's requests near the threshold, a few of them."""
    scored = probing.scored
    scores = [r.score for r in scored]
    replays = [r for r in scored if r.replay]
    return {
        "rule": f"at least {rules.min_requests} near-duplicate inputs (decisions and "
        f"replays) scored within {rules.score_band} of the threshold in {rules.window_s:g}s",
        "threshold": probing.threshold,
        "score_band": rules.score_band,
        "near_distance": rules.near_distance,
        "window_s": rules.window_s,
        "near_threshold": len(scored),
        "near_duplicates": probing.near,
        "from_replays": len(replays),
        "near_duplicates_from_replays": sum(
            m for m, r in zip(probing.mask, scored, strict=True) if r.replay
        ),
        "score_range": [min(scores), max(scores)],
        "examples": [r.ident for r in scored if not r.replay][:EXAMPLES],
        "replayed_decisions": list(dict.fromkeys(r.ident for r in replays))[:EXAMPLES],
    }


def _upsert_alert(
    session: Session, group: Group, start: datetime, probing: Probing, detail: dict[str, Any]
) -> tuple[Alert, bool]:
    """Open an alert for the group, or extend its episode if one is open in the window; and
    whether it was opened."""
    first = min(r.at for r in probing.scored)
    last = max(r.at for r in probing.scored)
    alert = session.exec(
        select(Alert)
        .where(
            Alert.kind == PROBING,
            Alert.key_id == group.key_id,
            Alert.endpoint == group.endpoint,
            Alert.model == group.model,
            Alert.version == group.version,
            col(Alert.last_seen_at) >= start,
        )
        .order_by(col(Alert.id).desc())
        .limit(1)
    ).first()
    opened = alert is None
    if alert is None:
        alert = Alert(
            alert_id=str(uuid.uuid4()),
            kind=PROBING,
            key_id=group.key_id,
            endpoint=group.endpoint,
            model=group.model,
            version=group.version,
            first_seen_at=first,
            last_seen_at=last,
            requests=probing.near,
            detail=detail,
        )
    else:
        alert.last_seen_at = max(alert.last_seen_at, last)
        alert.requests = max(alert.requests, probing.near)
        alert.detail = detail
        alert.updated_at = utcnow()
    session.add(alert)
    return alert, opened


def _count_opened(group: Group) -> None:
    metrics.PROBING_ALERTS.labels(group.endpoint).inc()
    log.warning(
        "probing alert: key %s on %s %s v%s",
        group.key_id,
        group.endpoint,
        group.model,
        group.version,
    )


def scan(session: Session, settings: Settings, now: datetime | None = None) -> list[Alert]:
    """Raise or extend a probing alert for every key that matches the rules now."""
    rules = rules_of(settings)
    now = now or utcnow()
    start = now - timedelta(seconds=rules.window_s)
    _serialize_scans(session)
    raised = []
    for group in _candidates(session, rules, start, now):
        probing = _apply_rules(rules, _near_threshold(session, group, rules, start, now))
        if probing is None:
            continue
        alert, opened = _upsert_alert(session, group, start, probing, _detail(rules, probing))
        if opened:
            _count_opened(group)
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
            try:
                with transaction(self.sessions) as session:
                    notice_clock.clock_scan(session, self.settings, utcnow())
            except Exception as exc:
                log.warning("notice clock scan failed: %s", exc)
            self._rollouts()
            self._experiments()

    def _experiments(self) -> None:
        """Each running experiment's kept counts brought up to date, so that a report read
        after a restart does not count a long experiment from the start."""
        with transaction(self.sessions) as session:
            found = experiments.running(session)
        for experiment_id in found:
            try:
                with transaction(self.sessions) as session:
                    experiments.keep_counts(session, experiment_id)
            except Exception as exc:
                log.warning("experiment %s: keeping its counts failed: %s", experiment_id, exc)

    def _rollouts(self) -> None:
        """Each roll-out's current step: stepped up, rolled back, or left to wait."""
        with transaction(self.sessions) as session:
            found = promotions.rolling_out(session)
        for promotion_id in found:
            try:
                with transaction(self.sessions) as session:
                    _p, action, reason = promotions.tick(
                        session, self.settings, promotion_id, ROLLOUT, utcnow()
                    )
                if action != "waiting":
                    log.warning("roll-out %s %s: %s", promotion_id, action, reason)
            except Exception as exc:
                log.warning("roll-out %s: the look failed: %s", promotion_id, exc)
