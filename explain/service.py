"""Explaining one logged decision with the exact model version that made it.

Every answer is computed from the decision's logged input and the model version named in its
record (the artifact's sha256 verified on load, archived or not), stored with its method, seed
and library versions, and served from storage afterwards. Every read is written to the access
trail in the same transaction.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from core.audit import access
from core.auth.schemas import Principal
from core.config import Settings
from core.errors import InvalidInput
from core.limits import KeyLimiter
from explain import attributions, reasons
from explain.compute import SAMPLING, compute
from explain.context import ContextCache, ModelContext
from explain.models import Explanation
from explain.pool import ExplainPool
from lineage import registry
from lineage.input_schema import InputSchema
from lineage.models import ModelVersion
from serving.lookups import get_decision
from serving.models import DecisionRecord
from serving.state import Serving
from serving.validation import canonical_features, check_features

METHODS = ("shap", "anchor", "counterfactual", "robustness")


def preload_libraries() -> threading.Thread:
    """Import shap and alibi in the background: together they take several seconds, which the
    first explanation after a start would otherwise wait for."""

    def load() -> None:
        import alibi.explainers  # noqa: F401
        import shap  # noqa: F401

    thread = threading.Thread(target=load, name="govern-explain-preload", daemon=True)
    thread.start()
    return thread


@dataclass
class Explainers:
    """Per-process explain state: contexts (model, training rows, fitted explainers), the worker
    processes the sampling methods run in, and each key's share of new computations."""

    contexts: ContextCache
    pool: ExplainPool | None = None
    limiter: KeyLimiter | None = None

    @classmethod
    def create(
        cls,
        serving: Serving,
        sessions: sessionmaker[Session],
        settings: Settings,
        limiter: KeyLimiter | None = None,
        *,
        workers: bool = True,
    ) -> Explainers:
        """``workers=False`` computes everything in this process (a CLI batch, which is not the
        server); ``limiter=None`` caps no key (the operator's own batch)."""
        return cls(
            contexts=ContextCache(sessions, serving.model, settings.explain_cache_size),
            pool=ExplainPool(settings) if workers and settings.explain_workers > 0 else None,
            limiter=limiter,
        )

    def compute(self, logged: Logged, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.compute_for(
            logged.model, logged.features, logged.content["label"], method, params
        )

    def compute_for(
        self,
        model: dict[str, Any],
        features: dict[str, Any],
        label: Any,
        method: str,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        """One explanation of ``features`` by the model version ``model`` (name, version,
        sha256): in a worker process for a sampling method, else here."""
        if self.pool is not None and method in SAMPLING:
            return self.pool.explain(model, features, label, method, params)
        context = self.contexts.get(model["name"], int(model["version"]), model["sha256"])
        return compute(context, features, label, method, params)

    def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


@dataclass(frozen=True)
class Logged:
    record: DecisionRecord
    content: dict[str, Any]

    @property
    def model(self) -> dict[str, Any]:
        model: dict[str, Any] = self.content["model"]
        return model

    @property
    def features(self) -> dict[str, Any]:
        features: dict[str, Any] = self.content["features"]
        return features


def logged_decision(session: Session, decision_id: str) -> Logged:
    """A scored decision (live or shadow); 404 unknown, 409 a rejected attempt or purged."""
    record = get_decision(session, decision_id)
    return Logged(record=record, content=json.loads(record.payload or "{}"))


def _context(explainers: Explainers, logged: Logged) -> ModelContext:
    model = logged.model
    return explainers.contexts.get(model["name"], int(model["version"]), model["sha256"])


def _version(session: Session, logged: Logged) -> ModelVersion:
    _model, version = registry.get_version(
        session=session, name=logged.model["name"], version=int(logged.model["version"])
    )
    return version


def recorded_seed(version: ModelVersion) -> int:
    """The spec's ``seeds.explain`` (0 for models trained before it existed or outside)."""
    return int((version.lineage or {}).get("seeds", {}).get("explain", 0))


def _params_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def _stored(session: Session, decision_id: str, method: str, key: str) -> Explanation | None:
    return session.exec(
        select(Explanation).where(
            Explanation.decision_id == decision_id,
            Explanation.method == method,
            Explanation.params_key == key,
        )
    ).first()


def _seeded(session: Session, logged: Logged, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters with the recorded seed when none is asked for: the stored row's key."""
    if params.get("seed") is None:
        return {**params, "seed": recorded_seed(_version(session, logged))}
    return params


def is_stored(session: Session, logged: Logged, method: str, params: dict[str, Any]) -> bool:
    """Whether this explanation is stored already (showing it costs no computation)."""
    key = _params_key(_seeded(session, logged, params))
    return _stored(session, logged.record.decision_id, method, key) is not None


def explanation_for(
    session: Session,
    explainers: Explainers,
    logged: Logged,
    method: str,
    params: dict[str, Any],
    actor: str,
) -> tuple[Explanation, bool]:
    """The stored explanation, computing and storing it first if needed; (row, was_cached)."""
    decision_id = logged.record.decision_id
    params = _seeded(session, logged, params)
    key = _params_key(params)
    found = _stored(session, decision_id, method, key)
    if found is not None:
        return found, True
    # Only a new explanation costs anything: that is what each key's share counts.
    share = (
        explainers.limiter.slot(actor, "new explanations")
        if explainers.limiter is not None
        else nullcontext()
    )
    with share:
        started = time.perf_counter()
        result = explainers.compute(logged, method, params)
    row = Explanation(
        decision_id=decision_id,
        method=method,
        params_key=key,
        model=logged.model["name"],
        version=int(logged.model["version"]),
        artifact_sha256=logged.model["sha256"],
        seed=int(params["seed"]),
        versions=attributions.library_versions(),
        result=result,
        compute_ms=(time.perf_counter() - started) * 1000,
        created_by=actor,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # computed concurrently by another request: serve the stored one
        found = _stored(session, decision_id, method, key)
        assert found is not None
        return found, True
    return row, False


def explanation_public(logged: Logged, row: Explanation, cached: bool) -> dict[str, Any]:
    return {
        "decision_id": logged.record.decision_id,
        "model": logged.model,
        "label": logged.content.get("label"),
        "score": logged.content.get("score"),
        **row.result,
        "versions": row.versions,
        "params": json.loads(row.params_key),
        "cached": cached,
        "computed_at": row.created_at,
        "compute_ms": round(row.compute_ms, 3),
    }


def explain(
    session: Session,
    explainers: Explainers,
    decision_id: str,
    method: str,
    params: dict[str, Any],
    principal: Principal,
) -> dict[str, Any]:
    logged = logged_decision(session, decision_id)
    row, cached = explanation_for(session, explainers, logged, method, params, principal.key_id)
    access.record(session, principal, f"explanation.{method}", target=decision_id, params=params)
    return explanation_public(logged, row, cached)


SCORECARD_METHOD = "scorecard points lost against each feature's best bin"


def reasons_for(
    session: Session, explainers: Explainers, decision_id: str, principal: Principal
) -> dict[str, Any]:
    logged = logged_decision(session, decision_id)
    schema = InputSchema.from_document(_version(session, logged).input_schema)
    if schema.scorecard is not None:  # points lost, read off the recorded points table
        attributions: dict[str, Any] = {}
        source: dict[str, Any] = {"method": SCORECARD_METHOD, "seed": None, "versions": {}}
    else:
        row, _cached = explanation_for(session, explainers, logged, "shap", {}, principal.key_id)
        attributions = row.result
        source = {"method": row.result["method"], "seed": row.seed, "versions": row.versions}
    result = reasons.adverse_action_reasons(
        schema, attributions, logged.content["label"], schema.favourable, logged.features
    )
    access.record(session, principal, "explanation.reasons", target=decision_id)
    return {
        "decision_id": decision_id,
        "model": logged.model,
        "score": logged.content.get("score"),
        **result,
        "source": source,
    }


def what_if(
    session: Session,
    serving: Serving,
    decision_id: str,
    overrides: dict[str, Any],
    principal: Principal,
) -> dict[str, Any]:
    """Score the logged input again, with any overrides, on the same model version.

    Recorded in the access trail as a replay; never logged as a production decision.
    """
    logged = logged_decision(session, decision_id)
    model = serving.model(logged.model["name"], int(logged.model["version"]))
    if model.sha256 != logged.model["sha256"]:
        raise InvalidInput(
            "the decision's model version no longer has the artifact it was made with",
            details={"registered": model.sha256, "decision": logged.model["sha256"]},
        )
    known = set(model.input_schema.feature_names)
    problems = [
        {"field": f"overrides.{name}", "message": "not a feature of this model"}
        for name in overrides
        if name not in known
    ]
    features = {**logged.features, **{k: v for k, v in overrides.items() if k in known}}
    problems += [
        p
        for p in check_features(model.input_schema, features, prefix="overrides")
        if p["field"].split(".", 1)[1] in overrides
    ]
    if problems:
        raise InvalidInput("the overrides are not valid inputs for this model", details=problems)
    features = canonical_features(model.input_schema, features)
    score = float(model.scores([features])[0])
    label = model.label_for(score)
    logged_score = logged.content.get("score")
    logged_label = logged.content.get("label")
    same = score == logged_score and str(label) == str(logged_label)
    result = {
        "decision_id": decision_id,
        "model": logged.model,
        "overrides": {
            name: {"from": logged.features.get(name), "to": value}
            for name, value in sorted(overrides.items())
        },
        "logged": {"label": logged_label, "score": logged_score},
        "replay": {"label": label, "score": score},
        "identical": same,
        "reproduces_logged_decision": same if not overrides else None,
        "label_changed": str(label) != str(logged_label),
    }
    access.record(
        session,
        principal,
        "replay",
        target=decision_id,
        params={"overrides": overrides},
        detail={"score": score, "label": label, "identical": same},
    )
    return result
