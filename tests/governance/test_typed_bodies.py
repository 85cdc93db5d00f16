"""The response models describe exactly what the services build (issue 18, typed responses).

A route whose service builds a dict validates it against its model and serves it with
``response_model_exclude_unset``: its body must be what the dict itself gives, serialized
untyped as these routes did before they had models (the same keys, values and JSON types: an
integer stays an integer, a null present where the service put one, no default added). A route
that serves a document as built (the dossier, the card) must have a model that takes the
document and gives it back unchanged: every key declared, every value of its type.

Key order is not compared: a JSON object is unordered, and PostgreSQL's JSONB gives stored
documents back in its own key order, where a model writes its fields in declared order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.testclient import TestClient
from pydantic import TypeAdapter
from sqlmodel import Session

from core import __version__
from core.auth.models import Role
from core.auth.schemas import Principal
from core.config import Settings
from core.db import transaction
from core.health import Liveness, Readiness
from core.responses import JsonValue
from explain import schemas as explain_schemas
from explain import service as explain_service
from explain.drift import service as drift_service
from explain.drift.schemas import DriftReport
from explain.fairness import service as fairness_service
from explain.fairness.schemas import FairnessReport
from governance.audit import verification
from governance.audit.schemas import Checkpoint, ProbingDetail, VerifyReport
from governance.compliance import inventory
from governance.compliance.schemas import Dossier, Inventory, ModelCard
from rebuild.schemas import RebuildPublic
from tests.conftest import Served
from tests.support.factories import applicant, book_applicant

UNTYPED = TypeAdapter(Any)


def typed(value: Any) -> Any:
    """A JSON value to compare with its types: 1, 1.0 and true differ; key order does not."""
    if isinstance(value, dict):
        return sorted((k, typed(v)) for k, v in value.items())
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def same_body(served: bytes, built: Any) -> bool:
    """The served body is ``built`` (a service's dict) as the routes served it before they had
    a response model: serialized untyped."""
    return typed(json.loads(served)) == typed(json.loads(UNTYPED.dump_json(built)))


def described(model: Any, body: Any) -> Any:
    """``body`` read with ``model`` and written again is ``body``: nothing dropped, added or
    converted (an integer stays an integer, a null stays a null)."""
    adapter = TypeAdapter(model)
    again = adapter.dump_python(
        adapter.validate_python(body), mode="json", by_alias=True, exclude_unset=True
    )
    assert typed(again) == typed(body)
    return body


@contextmanager
def session_of(app: FastAPI) -> Iterator[Session]:
    with transaction(app.state.sessions) as session:
        yield session


def principal_of(client: TestClient, headers: dict[str, str]) -> Principal:
    return Principal(**client.get("/api/v1/whoami", headers=headers).json())


def decide(client: TestClient, auth: Any, endpoint: str, **body: Any) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/endpoints/{endpoint}/predict", headers=auth(Role.predictor), json=body
    )
    assert response.status_code == 200, response.text
    decision: dict[str, Any] = response.json()
    return decision


def test_explanation_bodies_are_what_the_service_builds(
    client: TestClient, app: FastAPI, auth: Any, served: Served, served_book: Served
) -> None:
    decisions = [
        decide(client, auth, "credit", features=applicant(income=21_000.0, late_payments=3)),
        decide(client, auth, "credit", features=applicant(income=150_000.0, late_payments=0)),
        decide(client, auth, "lending", features=book_applicant(purpose=None, age=61)),
        decide(client, auth, "lending", features=book_applicant(income=9000.0)),
    ]
    assert {str(d["label"]) for d in decisions[:2]} == {"0", "1"}, "both classes explained"
    headers = auth(Role.data_scientist)
    principal = principal_of(client, headers)
    fragile_below = app.state.settings.robustness_fragile_below
    methods: list[tuple[str, str, dict[str, Any], Any]] = [
        ("explanations/shap", "shap", {"seed": None}, explain_schemas.ShapExplanation),
        (
            "explanations/anchor",
            "anchor",
            {"threshold": 0.95, "seed": None},
            explain_schemas.AnchorExplanation,
        ),
        (
            "explanations/counterfactual",
            "counterfactual",
            {"k": 3, "seed": None},
            explain_schemas.CounterfactualExplanation,
        ),
        (
            "robustness",
            "robustness",
            {"seed": None, "fragile_below": fragile_below},
            explain_schemas.RobustnessReport,
        ),
    ]
    optional_seen: set[str] = set()
    for decision in decisions:
        base = f"/api/v1/decisions/{decision['decision_id']}"
        for path, method, params, model in methods:
            first = client.get(f"{base}/{path}", headers=headers)
            assert first.status_code == 200, first.text
            assert first.json()["cached"] is False
            described(model, first.json())
            with session_of(app) as session:
                built = explain_service.explain(
                    session,
                    app.state.explainers,
                    decision["decision_id"],
                    method,
                    params,
                    principal,
                )
            again = client.get(f"{base}/{path}", headers=headers)
            assert same_body(again.content, built), f"{method}: the body is the service's dict"
            optional_seen |= {"found_by", "replay"} & set(first.json())
        reasons = client.get(f"{base}/reasons", headers=headers)
        with session_of(app) as session:
            built = explain_service.reasons_for(
                session, app.state.explainers, decision["decision_id"], principal
            )
        assert same_body(reasons.content, built)
        described(explain_schemas.AdverseActionReasons, reasons.json())
        # A favourable decision's reasons have no "space"; the key stays absent, not null.
        assert ("space" in reasons.json()) is (not reasons.json()["favourable"])
        for overrides in ({}, {"income": 99_999.0}, {"loan_amount": 5000}):
            replayed = client.post(f"{base}/replay", headers=headers, json={"overrides": overrides})
            assert replayed.status_code == 200, replayed.text
            with session_of(app) as session:
                built = explain_service.what_if(
                    session, app.state.serving, decision["decision_id"], overrides, principal
                )
            assert same_body(replayed.content, built)
            body = described(explain_schemas.Replay, replayed.json())
            assert "reproduces_logged_decision" in body, "a null kept, not dropped"
    assert optional_seen == {"found_by", "replay"}, "a flip was found for some decision"


def test_report_bodies_are_what_the_services_build(
    client: TestClient, app: FastAPI, auth: Any, served: Served
) -> None:
    settings: Settings = app.state.settings
    outcomes = auth(Role.outcomes)
    for i in range(40):
        decision = decide(
            client,
            auth,
            "credit",
            subject_id=f"s{i}",
            features=applicant(income=20_000.0 + 2000 * i, late_payments=i % 4),
            context={"sex": "F" if i % 3 else "M", "age": 20 + i},
        )
        if i % 2:
            recorded = client.post(
                f"/api/v1/decisions/{decision['decision_id']}/outcome",
                headers=outcomes,
                json={"outcome": 1 if i % 3 else 0, "observed_at": datetime.now(UTC).isoformat()},
            )
            assert recorded.status_code == 201, recorded.text
    compliance = auth(Role.compliance)
    principal = principal_of(client, compliance)
    fairness_queries: list[dict[str, Any]] = [
        {"attribute": ["sex"]},
        {"attribute": ["sex"], "window": "week"},
        {"attribute": ["sex", "age"], "min_group_size": 5},
        {"attribute": ["age"], "bins": ["age:18,30,45,70"], "model": "credit", "version": 1},
    ]
    for query in fairness_queries:
        response = client.get(
            "/api/v1/fairness", headers=compliance, params={"endpoint": "credit", **query}
        )
        assert response.status_code == 200, response.text
        with session_of(app) as session:
            built = fairness_service.report(
                session,
                principal,
                endpoint="credit",
                attributes=query["attribute"],
                bins=query.get("bins", []),
                since=None,
                until=None,
                model=query.get("model"),
                version=query.get("version"),
                route=None,
                window=query.get("window"),
                min_group_size=query.get("min_group_size", settings.fairness_min_group_size),
                min_cell_size=settings.min_cell_size,
            )
        assert same_body(response.content, built), query
        body = described(FairnessReport, response.json())
        assert ("trend" in body) is ("window" in query), "absent without a window, not null"

    for min_samples in (None, 100):
        params = {"endpoint": "credit"} | ({"min_samples": min_samples} if min_samples else {})
        response = client.get("/api/v1/drift", headers=compliance, params=params)
        assert response.status_code == 200, response.text
        with session_of(app) as session:
            built = drift_service.report(
                session,
                principal,
                app.state.explainers,
                endpoint="credit",
                since=None,
                until=None,
                model=None,
                version=None,
                alpha=settings.drift_alpha,
                psi_threshold=settings.drift_psi_threshold,
                min_samples=min_samples or settings.drift_min_samples,
                resamples=settings.drift_resamples,
            )
        assert same_body(response.content, built)
        described(DriftReport, response.json())

    created = client.post("/api/v1/audit/checkpoints", headers=compliance, json={})
    assert created.status_code == 201, created.text
    described(Checkpoint, created.json())
    listed = client.get("/api/v1/audit/checkpoints", headers=compliance)
    with session_of(app) as session:
        stored = [verification.checkpoint_dict(c) for c in verification.stored_checkpoints(session)]
    assert same_body(listed.content, stored)
    exported = created.json()
    forged = {**exported, "record_hash": "0" * 64}
    for given in ([], [exported], [forged]):
        checked = client.post(
            "/api/v1/audit/verify", headers=compliance, json={"checkpoints": given}
        )
        with session_of(app) as session:
            built = verification.verify_report(session, settings, extra_checkpoints=given)
        assert same_body(checked.content, built)
        described(VerifyReport, checked.json())
    assert client.get("/api/v1/audit/verify", headers=compliance).json()["ok"] is True
    assert "problem" in checked.json()["checkpoints"][-1], "the forged checkpoint says why"

    for asked in ({}, {"status": "in_use"}, {"at": "2020-01-01T00:00:00+00:00"}):
        listed = client.get("/api/v1/inventory", headers=compliance, params=asked)
        with session_of(app) as session:
            at = datetime.fromisoformat(asked["at"]) if "at" in asked else None
            items = inventory.inventory(session, status=asked.get("status"), at=at)
        built = {
            "at": at.isoformat() if at else None,
            "status": asked.get("status"),
            "count": len(items),
            "versions": jsonable_encoder(items),
        }
        assert same_body(listed.content, built)
        described(Inventory, listed.json())

    alive = client.get("/healthz")
    assert same_body(alive.content, {"status": "ok", "version": __version__})
    described(Liveness, alive.json())
    described(Readiness, client.get("/readyz").json())


def test_served_documents_are_described_by_their_models(
    client: TestClient, auth: Any, served: Served, served_book: Served
) -> None:
    """The dossier and the card are served as built: their models must take them whole, for
    each role's view (small groups withheld for a data scientist, marked for compliance)."""
    ids = []
    for i in range(12):
        ids.append(
            decide(
                client,
                auth,
                "credit",
                features=applicant(income=18_000.0 + 9000 * i, late_payments=i % 3),
                context={"sex": "F" if i % 4 else "M", "age": 25 + 3 * i},
            )["decision_id"]
        )
    book = decide(
        client,
        auth,
        "lending",
        features=book_applicant(purpose=None),
        context={"sex": "female", "foreign_worker": "no"},
    )["decision_id"]
    readers = [auth(Role.compliance), auth(Role.appeals), auth(Role.data_scientist)]
    for decision_id in (ids[0], ids[-1], book):
        for headers in readers:
            body = client.get(f"/api/v1/decisions/{decision_id}/dossier", headers=headers)
            assert body.status_code == 200, body.text
            described(Dossier, body.json())
        # With the anchor and robustness stored, the dossier shows them too.
        for path in ("explanations/anchor", "robustness"):
            client.get(f"/api/v1/decisions/{decision_id}/{path}", headers=readers[2])
        document = described(
            Dossier,
            client.get(f"/api/v1/decisions/{decision_id}/dossier", headers=readers[0]).json(),
        )
        assert document["anchor"] is not None and document["robustness"] is not None
    for model, version in (("credit", 1), ("loanbook", 1)):
        for role in (Role.compliance, Role.data_scientist):
            card = client.get(f"/api/v1/models/{model}/versions/{version}/card", headers=auth(role))
            assert card.status_code == 200, card.text
            described(ModelCard, card.json())
    card = client.get("/api/v1/models/credit/versions/1/card", headers=auth(Role.data_scientist))
    live = card.json()["live_fairness"][0]
    assert live.get("comparison_suppressed") is True, "a small group was withheld"
    assert any(g.get("suppressed") for g in live["groups"])


def test_rebuild_bodies_keep_only_the_steps_reached(
    client: TestClient, auth: Any, served: Served
) -> None:
    decision = decide(client, auth, "credit", features=applicant())
    headers = auth(Role.data_scientist)

    def finished(rebuild_id: int, **params: Any) -> dict[str, Any]:
        deadline = time.monotonic() + 180
        while True:
            response = client.get(f"/api/v1/rebuilds/{rebuild_id}", headers=headers, params=params)
            body: dict[str, Any] = response.json()
            if body["status"] in {"succeeded", "failed"} or time.monotonic() > deadline:
                return described(RebuildPublic, body)
            time.sleep(0.2)

    started: list[Callable[[], Any]] = [
        lambda: client.post("/api/v1/models/credit/versions/1/rebuilds", headers=headers),
        lambda: client.post(
            f"/api/v1/decisions/{decision['decision_id']}/rebuild", headers=headers
        ),
    ]
    reports = []
    for start in started:
        response = start()
        assert response.status_code == 202, response.text
        described(RebuildPublic, response.json())
        reports.append(finished(response.json()["id"])["report"])
    of_version, of_decision = reports
    assert of_version["verdict"] == of_decision["verdict"] == "identical"
    assert "decision" not in of_version and "decision" in of_decision
    for report in reports:
        assert {"reason", "stopped", "predictions"}.isdisjoint(report), "steps never reached"
    for path in (
        "/api/v1/models/credit/versions/1/rebuilds",
        f"/api/v1/decisions/{decision['decision_id']}/rebuilds",
    ):
        page = client.get(path, headers=headers).json()
        assert len(page["data"]) >= 1
        for row in page["data"]:
            described(RebuildPublic, row)


def test_prepared_models_take_alert_details_and_trail_entries(
    client: TestClient, auth: Any, served: Served
) -> None:
    """``AlertPublic.detail`` and the access trail's ``params`` and ``detail`` are still
    ``dict[str, Any]`` where they are declared; the types prepared for them take real ones."""
    prober = auth(Role.predictor)

    def score(income: float) -> dict[str, Any]:
        return decide(client, lambda _role: prober, "credit", features=applicant(income=income))

    low, high = 5_000.0, 400_000.0
    first = score(low)
    for _ in range(14):  # bisect to the boundary, then walk along it: probing
        middle = (low + high) / 2
        low, high = (middle, high) if score(middle)["label"] == first["label"] else (low, middle)
    walk = [score(low + 40.0 * (i - 20)) for i in range(40)]
    replays = auth(Role.appeals)
    for decision in walk[:3]:
        replayed = client.post(
            f"/api/v1/decisions/{decision['decision_id']}/replay",
            headers=replays,
            json={"overrides": {"income": low + 10.0}},
        )
        assert replayed.status_code == 200, replayed.text
    compliance = auth(Role.compliance)
    scanned = client.post("/api/v1/audit/alerts/scan", headers=compliance)
    assert scanned.status_code == 200, scanned.text
    assert scanned.json(), "the walk is probing"
    for alert in scanned.json():
        described(ProbingDetail, alert["detail"])
    client.get("/api/v1/decisions", headers=compliance, params={"limit": 3, "endpoint": "credit"})
    client.get(f"/api/v1/decisions/{first['decision_id']}", headers=compliance)
    trail = client.get("/api/v1/audit/access-log", headers=compliance, params={"limit": 500})
    entries = trail.json()["data"]
    assert {"replay", "decisions.query"} <= {e["action"] for e in entries}
    for entry in entries:
        described(dict[str, JsonValue], entry["params"])
        described(dict[str, JsonValue], entry["detail"])
