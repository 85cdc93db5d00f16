"""Endpoints, the predict path and decision lookups."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from core.auth.models import Role
from core.auth.schemas import Principal
from core.config import Settings
from core.db import transaction, utcnow
from core.errors import (
    Conflict,
    GovernanceError,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    field_list,
    validation_details,
)
from lineage import service as lineage_service
from lineage.artifacts import ArtifactStore
from lineage.models import Stage
from serving import metrics
from serving.decision_log import DecisionLog
from serving.model_cache import LoadedModel, ModelCache
from serving.models import DecisionRecord, Endpoint, EndpointConfig
from serving.routing import choose_route
from serving.schemas import (
    ConfigChange,
    DecisionOut,
    DecisionRecordPublic,
    EndpointConfigIn,
    EndpointPublic,
    Instance,
    ModelRef,
    PredictRequest,
)
from serving.summary import clip, summarize
from serving.validation import (
    canonical_context,
    canonical_features,
    check_context,
    check_features,
)

log = logging.getLogger("govern.serving")

MAX_NESTING = 32


class RequestRejected(InvalidInput):
    """A predict request refused with 422; it is logged as a rejected attempt, never a decision."""


@dataclass
class Serving:
    """Per-process serving state: caches, the log writer, and the shadow pool."""

    settings: Settings
    sessions: sessionmaker[Session]
    log: DecisionLog
    models: ModelCache
    shadow_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="govern-shadow"
        )
    )
    rng: random.Random = field(default_factory=random.SystemRandom)
    _configs: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    _admission: asyncio.Semaphore | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, settings: Settings, sessions: sessionmaker[Session]) -> Serving:
        return cls(
            settings=settings,
            sessions=sessions,
            log=DecisionLog(sessions, settings.decision_log_max_batch),
            models=ModelCache(ArtifactStore(settings.artifacts), settings.model_cache_size),
        )

    def start(self) -> None:
        self.log.start()

    def warm(self) -> int:
        """Load and verify every model an endpoint routes or shadows to, before traffic comes.

        A restarted process then answers its first requests at full speed instead of queueing
        them behind model loads (and shedding them). Anything that fails here is only logged:
        the request path raises the same error, to the caller, with its proper status.
        """
        try:
            with transaction(self.sessions) as session:
                configs = [current_config(session, name) for name in list_endpoints(session)]
        except Exception as exc:
            log.warning("models not preloaded: %s", exc)
            return 0
        targets = sorted(
            {
                (target["model"], int(target["version"]))
                for config in configs
                for group in ("routes", "shadows")
                for target in config.get(group) or []
            }
        )[: self.settings.model_cache_size]
        loaded = 0
        for name, version in targets:
            try:
                self.model(name, version)
                loaded += 1
            except Exception as exc:
                log.warning("model %s v%s not preloaded: %s", name, version, exc)
        return loaded

    def stop(self) -> None:
        self.shadow_pool.shutdown(wait=True)
        self.log.stop()

    def forget(self, endpoint: str) -> None:
        with self._lock:
            self._configs.pop(endpoint, None)

    def config_for(self, endpoint: str) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            cached = self._configs.get(endpoint)
        if cached is not None and cached[0] > now:
            return cached[1]
        with transaction(self.sessions) as session:
            config = current_config(session, endpoint)
        with self._lock:
            self._configs[endpoint] = (now + self.settings.endpoint_cache_ttl_s, config)
        return config

    def endpoint_label(self, name: str) -> str:
        """``name`` as a metric label once it is known to exist, else one fixed label: names
        from the path must not grow the metrics without bound."""
        with self._lock:
            known = name in self._configs
        return name if known else metrics.UNKNOWN_ENDPOINT

    def model(self, name: str, version: int) -> LoadedModel:
        # A model version never changes once registered, so once loaded (and verified) it is
        # served from memory without asking the database again.
        cached = self.models.by_version(name, version)
        if cached is not None:
            return cached
        with transaction(self.sessions) as session:
            _model, found = lineage_service.get_version(session=session, name=name, version=version)
        return self.models.get(name, found)


# Endpoints --------------------------------------------------------------------------------------


def endpoint_row(session: Session, name: str) -> Endpoint:
    found = session.exec(select(Endpoint).where(Endpoint.name == name)).first()
    if found is None:
        raise NotFound(f"no endpoint named {name!r}", details={"endpoint": name})
    return found


def current_config(session: Session, name: str) -> dict[str, Any]:
    endpoint = endpoint_row(session, name)
    latest = session.exec(
        select(EndpointConfig)
        .where(EndpointConfig.endpoint_id == endpoint.id)
        .order_by(col(EndpointConfig.id).desc())
        .limit(1)
    ).first()
    assert latest is not None
    return latest.config


def _check_targets(session: Session, config: dict[str, Any]) -> None:
    """Every route and shadow names a registered version (else 422), and may serve (else 409):

    - every route, the canary and A/B arms included, points at a version whose promotion gate
      passed, and that is not archived;
    - the first route, the live one that takes the traffic no other route does, points at a
      version in production;
    - a shadow (scored, never answered) may point at any version that is not archived.
    """
    missing, refused = [], []
    for group in ("routes", "shadows"):
        for i, target in enumerate(config[group]):
            where, named = f"{group}.{i}", f"{target['model']} v{target['version']}"
            try:
                _model, version = lineage_service.get_version(
                    session=session, name=target["model"], version=target["version"]
                )
            except NotFound as exc:
                missing.append({"field": where, "message": exc.message})
                continue
            stage = lineage_service.current_stage(session, version)
            rule = _serving_rule(group, i, version.gate_passed, stage)
            if rule is not None:
                refused.append(
                    {
                        "field": where,
                        "model": target["model"],
                        "version": target["version"],
                        "stage": stage.value,
                        "rule": rule,
                        "message": f"{named}: {rule}",
                    }
                )
    if missing:
        raise InvalidInput("the configuration names models that do not exist", details=missing)
    if refused:
        raise Conflict(
            "the configuration routes traffic to versions that may not serve it: "
            + "; ".join(r["message"] for r in refused),
            code="not_servable",
            details=refused,
        )


def _serving_rule(group: str, index: int, gate_passed: bool, stage: Stage) -> str | None:
    """The rule a target breaks, or None."""
    if stage is Stage.archived:
        return "an archived version serves nothing, not even as a shadow"
    if group == "shadows":
        return None
    if not gate_passed:
        return "it failed its promotion gate, so it may not answer any traffic"
    if index == 0 and stage is not Stage.production:
        return (
            f"the live (first) route must point at a version in production; it is in {stage.value}"
        )
    return None


def put_endpoint(
    *, session: Session, name: str, config_in: EndpointConfigIn, actor: str
) -> Endpoint:
    config = config_in.resolved()
    _check_targets(session, config)
    endpoint = session.exec(select(Endpoint).where(Endpoint.name == name)).first()
    if endpoint is None:
        endpoint = Endpoint(name=name, created_by=actor)
        session.add(endpoint)
        session.flush()
    assert endpoint.id is not None
    session.add(EndpointConfig(endpoint_id=endpoint.id, config=config, created_by=actor))
    session.flush()
    return endpoint


def endpoint_public(session: Session, name: str) -> EndpointPublic:
    endpoint = endpoint_row(session, name)
    rows = session.exec(
        select(EndpointConfig)
        .where(EndpointConfig.endpoint_id == endpoint.id)
        .order_by(col(EndpointConfig.id))
    ).all()
    history = []
    previous: dict[str, Any] | None = None
    for row in rows:
        history.append(
            ConfigChange(at=row.created_at, by=row.created_by, old=previous, new=row.config)
        )
        previous = row.config
    latest = rows[-1]
    return EndpointPublic(
        name=name,
        config=latest.config,
        updated_at=latest.created_at,
        updated_by=latest.created_by,
        history=history,
    )


def list_endpoints(session: Session) -> list[str]:
    return list(session.exec(select(Endpoint.name).order_by(col(Endpoint.name))).all())


# Predict ----------------------------------------------------------------------------------------


@dataclass
class Planned:
    instance: Instance
    route: dict[str, Any]
    model: LoadedModel
    score: float = 0.0
    label: Any = None
    outlier: dict[str, Any] = field(default_factory=dict)


def parse_predict_body(raw: bytes) -> tuple[Any, PredictRequest | None, GovernanceError | None]:
    """Parse without trusting the body: every failure becomes a named 422, never a 500."""
    try:
        data = json.loads(raw)
    except RecursionError:
        return (
            None,
            None,
            InvalidInput(
                "the body is nested too deeply", details=[{"field": "", "message": "nesting"}]
            ),
        )
    except (ValueError, UnicodeDecodeError) as exc:
        return (
            None,
            None,
            InvalidInput(
                "the request body is not valid JSON", details=[{"field": "", "message": str(exc)}]
            ),
        )
    if _depth(data) > MAX_NESTING:
        return (
            None,
            None,
            InvalidInput(
                "the body is nested too deeply", details=[{"field": "", "message": "nesting"}]
            ),
        )
    try:
        return data, PredictRequest.model_validate(data), None
    except ValidationError as exc:
        details = validation_details(exc.errors())
        fields = field_list([d["field"] for d in details])
        return data, None, InvalidInput(f"invalid predict request: {fields}", details=details)


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_NESTING:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _plan(serving: Serving, endpoint: str, request: PredictRequest) -> list[Planned]:
    config = serving.config_for(endpoint)
    planned = []
    problems: list[dict[str, str]] = []
    many = request.instances is not None
    for i, instance in enumerate(request.as_instances()):
        route = choose_route(endpoint, config, instance.subject_id, serving.rng)
        model = serving.model(route["model"], route["version"])
        prefix = f"instances.{i}." if many else ""
        protected = model.schema.get("protected")
        problems += check_features(model.schema, instance.features, f"{prefix}features")
        problems += check_context(instance.context, f"{prefix}context", protected)
        planned.append(Planned(instance=instance, route=route, model=model))
    if problems:
        fields = field_list([p["field"] for p in problems])
        raise RequestRejected(f"invalid input: {fields}", details=problems)
    for item in planned:
        schema = item.model.schema
        item.instance.features = canonical_features(schema, item.instance.features)
        if item.instance.context is not None:
            item.instance.context = canonical_context(
                item.instance.context, schema.get("protected")
            )
    by_model: dict[str, list[Planned]] = {}
    for item in planned:
        by_model.setdefault(item.model.sha256 + item.route["name"], []).append(item)
    for items in by_model.values():
        model = items[0].model
        rows = [it.instance.features for it in items]
        scores = model.scores(rows)
        for item, score in zip(items, scores, strict=True):
            item.score = score
            item.label = model.label_for(score)
        if serving.settings.ood_scoring:
            started = time.perf_counter()
            for item, outlier in zip(items, model.outlier_fields(rows), strict=True):
                item.outlier = outlier
            metrics.OOD_SCORING.observe(time.perf_counter() - started)
    return planned


def _content(
    *,
    kind: str,
    endpoint: str,
    principal: Principal,
    created_at: str,
    decision_id: str,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "decision_id": decision_id,
        "kind": kind,
        "created_at": created_at,
        "endpoint": endpoint,
        "key_id": principal.key_id,
        **fields,
    }


def _decision_content(
    endpoint: str, item: Planned, principal: Principal, latency_ms: float
) -> dict[str, Any]:
    return _content(
        kind="decision",
        endpoint=endpoint,
        principal=principal,
        created_at=utcnow().isoformat(),
        decision_id=str(uuid.uuid4()),
        model={"name": item.model.name, "version": item.model.version, "sha256": item.model.sha256},
        route=item.route["name"],
        subject_id=item.instance.subject_id,
        features=item.instance.features,
        context=item.instance.context or {},
        label=item.label,
        score=item.score,
        **item.outlier,
        latency_ms=round(latency_ms, 3),
    )


async def _commit(serving: Serving, contents: list[dict[str, Any]]) -> list[tuple[int, str]]:
    try:
        return await asyncio.wrap_future(serving.log.submit(contents))
    except Exception as exc:
        raise ServiceUnavailable(
            "the decision log cannot be written, so no decision is returned; retry later",
            code="decision_log_unavailable",
            headers={"Retry-After": "1"},
        ) from exc


async def reject(
    serving: Serving, endpoint: str, principal: Principal, body: Any, error: GovernanceError
) -> GovernanceError:
    await run_in_threadpool(serving.config_for, endpoint)  # unknown endpoint: 404, nothing logged
    rejection_id = str(uuid.uuid4())
    details, details_cut = summarize(error.details)
    request, request_cut = summarize(body) if body is not None else (None, False)
    content = _content(
        kind="rejected",
        endpoint=endpoint,
        principal=principal,
        created_at=utcnow().isoformat(),
        decision_id=rejection_id,
        reason={"code": error.code, "message": clip(error.message, 1000), "details": details},
        request=request,
        # The stored summary is bounded (serving.summary); these say whether it was cut.
        truncated={"reason": details_cut or len(error.message) > 1000, "request": request_cut},
    )
    await _commit(serving, [content])
    first = (
        error.details[0].get("field", "")
        if isinstance(error.details, list) and error.details and isinstance(error.details[0], dict)
        else "body"
    )
    metrics.REJECTIONS.labels(endpoint, metrics.rejection_reason(str(first))).inc()
    error.details = {"rejection_id": rejection_id, "problems": error.details}
    return error


async def predict(
    serving: Serving, endpoint: str, raw: bytes, principal: Principal, started: float
) -> tuple[list[DecisionOut], bool]:
    """Decide, log durably, then answer. No answer leaves before its record is committed.

    Calls are admitted a few at a time, first come first served: under overload requests queue
    and finish in order, instead of all interleaving and all finishing late.
    """
    if serving._admission is None:
        serving._admission = asyncio.Semaphore(serving.settings.predict_concurrency)
    async with serving._admission:
        return await _predict(serving, endpoint, raw, principal, started)


async def _predict(
    serving: Serving, endpoint: str, raw: bytes, principal: Principal, started: float
) -> tuple[list[DecisionOut], bool]:
    body, request, error = parse_predict_body(raw)
    if error is None:
        assert request is not None
        try:
            planned = await run_in_threadpool(_plan, serving, endpoint, request)
        except RequestRejected as exc:
            error = exc
    if error is not None:
        raise await reject(serving, endpoint, principal, body, error)

    latency_ms = (time.perf_counter() - started) * 1000
    contents = [_decision_content(endpoint, item, principal, latency_ms) for item in planned]
    await _commit(serving, contents)
    outs = []
    for item, content in zip(planned, contents, strict=True):
        metrics.DECISIONS.labels(
            endpoint, item.model.name, str(item.model.version), item.route["name"]
        ).inc()
        if item.outlier.get("is_outlier"):
            metrics.OUTLIERS.labels(endpoint, item.model.name, str(item.model.version)).inc()
        outs.append(
            DecisionOut(
                decision_id=content["decision_id"],
                endpoint=endpoint,
                model=ModelRef(
                    name=item.model.name, version=item.model.version, sha256=item.model.sha256
                ),
                route=item.route["name"],
                label=item.label,
                score=item.score,
                created_at=content["created_at"],
            )
        )
    shadows = serving.config_for(endpoint).get("shadows") or []
    if shadows:
        serving.shadow_pool.submit(
            _run_shadows, serving, endpoint, shadows, planned, contents, principal
        )
    assert request is not None
    return outs, request.instances is not None


def _run_shadows(
    serving: Serving,
    endpoint: str,
    shadows: list[dict[str, Any]],
    planned: list[Planned],
    live: list[dict[str, Any]],
    principal: Principal,
) -> None:
    """Off the request path: score every shadow model and log its decisions, linked to live."""
    try:
        contents = []
        for shadow in shadows:
            model = serving.model(shadow["model"], shadow["version"])
            usable = [
                (p, c)
                for p, c in zip(planned, live, strict=True)
                if not check_features(model.schema, p.instance.features)
            ]
            if not usable:
                continue
            rows = [p.instance.features for p, _ in usable]
            scores = model.scores(rows)
            outliers = (
                model.outlier_fields(rows) if serving.settings.ood_scoring else [{}] * len(rows)
            )
            for (item, parent), score, outlier in zip(usable, scores, outliers, strict=True):
                label = model.label_for(score)
                if str(label) != str(item.label):
                    metrics.SHADOW_DISAGREEMENTS.labels(
                        endpoint, model.name, str(model.version)
                    ).inc()
                metrics.DECISIONS.labels(endpoint, model.name, str(model.version), "shadow").inc()
                contents.append(
                    _content(
                        kind="shadow",
                        endpoint=endpoint,
                        principal=principal,
                        created_at=utcnow().isoformat(),
                        decision_id=str(uuid.uuid4()),
                        model={
                            "name": model.name,
                            "version": model.version,
                            "sha256": model.sha256,
                        },
                        route="shadow",
                        subject_id=item.instance.subject_id,
                        features=item.instance.features,
                        context=item.instance.context or {},
                        label=label,
                        score=score,
                        **outlier,
                        parent_decision_id=parent["decision_id"],
                    )
                )
        if contents:
            serving.log.submit(contents).result(timeout=60)
    except Exception:
        log.exception("shadow scoring failed for endpoint %s", endpoint)


# Lookups ----------------------------------------------------------------------------------------

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
            config: Mapping[str, Any] | None = serving.config_for(endpoint)
        except NotFound:
            config = None
    else:
        config = session.exec(
            select(EndpointConfig.config)
            .join(Endpoint, col(Endpoint.id) == EndpointConfig.endpoint_id)
            .where(Endpoint.name == endpoint)
            .order_by(col(EndpointConfig.id).desc())
            .limit(1)
        ).first()
    return frozenset((config or {}).get("public_context") or [])


def visible_context(
    session: Session,
    record: DecisionRecord,
    view: lineage_service.VersionView | None,
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
    content = json.loads(record.payload) if record.payload else {}
    model_ref = content.get("model")
    lineage = None
    view = None
    if model_ref:
        view = lineage_service.version_view(session, model_ref["name"], model_ref["version"])
        lineage = view.lineage
    context = dict(content.get("context") or {})
    redacted: list[str] = []
    if principal.role not in PRIVILEGED and context:
        visible = visible_context(session, record, view, serving)
        redacted = sorted(k for k in context if k not in visible)
        for key in redacted:
            context.pop(key)
    shadows = list(
        session.exec(
            select(DecisionRecord.decision_id).where(
                DecisionRecord.parent_decision_id == record.decision_id
            )
        ).all()
    )
    return DecisionRecordPublic(
        decision_id=record.decision_id,
        seq=record.seq,
        kind=record.kind,
        created_at=record.created_at,
        endpoint=record.endpoint,
        model=ModelRef(**model_ref) if model_ref else None,
        route=record.route,
        subject_id=content.get("subject_id"),
        features=content.get("features"),
        context=context if content.get("kind") != "rejected" else None,
        label=content.get("label"),
        score=content.get("score"),
        outlier_score=content.get("outlier_score"),
        is_outlier=content.get("is_outlier"),
        latency_ms=content.get("latency_ms"),
        key_id=record.key_id,
        parent_decision_id=record.parent_decision_id,
        shadows=shadows,
        reason=content.get("reason"),
        redacted=redacted,
        record_hash=record.record_hash,
        lineage=lineage,
    )
