from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from core.auth.models import Role
from governance.app import create_app
from serving import metrics
from serving.models import DecisionRecord
from tests.conftest import Served
from tests.support.factories import applicant

DECISIONS = DecisionRecord.__table__


def _rows(engine: sa.Engine, kind: str | None = None) -> list:
    query = sa.select(DECISIONS).order_by(DECISIONS.c.seq)
    if kind:
        query = query.where(DECISIONS.c.kind == kind)
    with engine.connect() as conn:
        return list(conn.execute(query).all())


def _predict(client: TestClient, auth, body: dict | bytes, role: Role = Role.predictor):
    headers = auth(role)
    if isinstance(body, bytes):
        return client.post(
            "/api/v1/endpoints/credit/predict",
            headers={**headers, "Content-Type": "application/json"},
            content=body,
        )
    return client.post("/api/v1/endpoints/credit/predict", headers=headers, json=body)


def test_a_decision_is_answered_only_with_its_record(
    client: TestClient, auth, served: Served, engine: sa.Engine
) -> None:
    response = _predict(
        client,
        auth,
        {"subject_id": "app-1", "features": applicant(), "context": {"sex": "F", "age": 41}},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {
        "decision_id",
        "endpoint",
        "model",
        "route",
        "label",
        "score",
        "created_at",
    }
    assert answer["route"] == "live"
    assert answer["label"] in (0, 1)
    assert answer["label"] == (1 if answer["score"] >= 0.5 else 0)

    [row] = _rows(engine)
    assert row.decision_id == answer["decision_id"]
    assert row.seq == 1
    assert row.kind == "decision"
    assert row.score == answer["score"]
    assert row.model == "credit" and row.version == served.versions[0]
    assert row.artifact_sha256 == answer["model"]["sha256"]
    content = json.loads(row.payload)
    assert content["features"] == applicant()
    assert content["context"] == {"sex": "F", "age": 41}
    assert content["subject_id"] == "app-1"
    assert content["key_id"] == row.key_id
    assert content["latency_ms"] > 0


def test_batch_returns_one_decision_per_instance(
    client: TestClient, auth, served: Served, engine: sa.Engine
) -> None:
    instances = [
        {"subject_id": f"s{i}", "features": applicant(income=30000.0 + 10000 * i)} for i in range(5)
    ]
    response = _predict(client, auth, {"instances": instances})
    assert response.status_code == 200
    decisions = response.json()["decisions"]
    assert len(decisions) == 5
    rows = _rows(engine)
    assert [r.decision_id for r in rows] == [d["decision_id"] for d in decisions]
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert [json.loads(r.payload)["subject_id"] for r in rows] == [f"s{i}" for i in range(5)]


BAD_INPUTS = [
    (
        {"features": {k: v for k, v in applicant().items() if k != "income"}},
        "features.income",
        "missing",
    ),
    ({"features": applicant(shoe_size=42)}, "features.shoe_size", "unknown"),
    ({"features": applicant(income="lots")}, "features.income", "must be a number"),
    ({"features": applicant(income=True)}, "features.income", "must be a number"),
    ({"features": applicant(income=None)}, "features.income", "null"),
    ({"features": applicant(income=-5.0)}, "features.income", "outside the bounds"),
    ({"features": applicant(debt_to_income=1.5)}, "features.debt_to_income", "outside the bounds"),
    ({"features": applicant(purpose="yacht")}, "features.purpose", "unseen category"),
    ({"features": applicant(purpose=3)}, "features.purpose", "unseen category 3"),
    ({"features": applicant(purpose=[1])}, "features.purpose", "must be a category"),
    ({"features": applicant(income=10**300)}, "features.income", "too large"),
    ({"features": applicant(), "context": {"sex": {"nested": 1}}}, "context.sex", "scalars"),
    ({"features": applicant(), "surprise": 1}, "surprise", "Extra inputs"),
    (
        {"instances": [{"features": applicant()}, {"features": applicant(income="x")}]},
        "instances.1.features.income",
        "number",
    ),
    ({}, "", "either features"),
]


@pytest.mark.parametrize(("body", "field", "text"), BAD_INPUTS)
def test_bad_input_is_422_naming_the_field_and_logged_as_rejected(
    client: TestClient, auth, served: Served, engine: sa.Engine, body: dict, field: str, text: str
) -> None:
    response = _predict(client, auth, body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    problems = error["details"]["problems"]
    assert any(p["field"] == field and text in p["message"] for p in problems), problems
    rows = _rows(engine)
    assert [r.kind for r in rows] == ["rejected"]
    assert rows[0].decision_id == error["details"]["rejection_id"]
    assert rows[0].label is None and rows[0].score is None
    assert json.loads(rows[0].payload)["reason"]["message"] == error["message"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"features": {"income": NaN}}', "features.income"),
        (b'{"features": {"income": Infinity}}', "features.income"),
        (b'{"features": {"income": -Infinity}}', "features.income"),
        (b'{"features": ', ""),
        (b"[" * 5000 + b"]" * 5000, ""),
        (b'"just a string"', ""),
        (b"\xff\xfe not utf-8", ""),
    ],
)
def test_hostile_bodies_are_refused_and_logged(
    client: TestClient, auth, served: Served, engine: sa.Engine, raw: bytes, field: str
) -> None:
    response = _predict(client, auth, raw)
    assert response.status_code == 422, response.text
    assert any(p["field"] == field for p in response.json()["error"]["details"]["problems"])
    assert [r.kind for r in _rows(engine)] == ["rejected"]


def test_oversized_body_is_413(client: TestClient, auth, served: Served, settings) -> None:
    big = {"features": applicant(), "context": {"note": "x"}, "pad": "y" * settings.max_body_bytes}
    assert _predict(client, auth, big).status_code == 413


def test_unknown_endpoint_is_404_and_nothing_logged(
    client: TestClient, auth, served: Served, engine: sa.Engine
) -> None:
    response = client.post(
        "/api/v1/endpoints/nope/predict",
        headers=auth(Role.predictor),
        json={"features": applicant()},
    )
    assert response.status_code == 404
    assert _rows(engine) == []


@pytest.mark.parametrize("role", [Role.compliance, Role.appeals, Role.data_scientist])
def test_only_predictors_predict(client: TestClient, auth, served: Served, role: Role) -> None:
    assert _predict(client, auth, {"features": applicant()}, role=role).status_code == 403


def test_canary_split_follows_its_weight(client: TestClient, auth, served: Served) -> None:
    v1, v2 = served.versions
    config = {
        "routes": [
            {"model": "credit", "version": v1, "weight": 0.8},
            {"model": "credit", "version": v2, "weight": 0.2},
        ]
    }
    assert (
        client.put("/api/v1/endpoints/credit", headers=served.headers, json=config).status_code
        == 200
    )
    routes = []
    for batch in range(20):
        instances = [{"features": applicant(income=20000.0 + 100 * i + batch)} for i in range(100)]
        response = _predict(client, auth, {"instances": instances})
        routes += [d["route"] for d in response.json()["decisions"]]
    canary = routes.count("canary")
    # Binomial(2000, 0.2): mean 400, sd 17.9; 5 sd either side fails about once in 3 million runs.
    assert 400 - 5 * 17.9 < canary < 400 + 5 * 17.9
    assert set(routes) == {"live", "canary"}


def test_sticky_routing_keeps_a_subject_on_its_route(
    client: TestClient, auth, served: Served
) -> None:
    v1, v2 = served.versions
    config = {
        "routes": [{"model": "credit", "version": v1}, {"model": "credit", "version": v2}],
        "sticky": True,
    }
    assert (
        client.put("/api/v1/endpoints/credit", headers=served.headers, json=config).status_code
        == 200
    )
    seen: dict[str, set[str]] = {}
    for _ in range(5):
        instances = [{"subject_id": f"applicant-{i}", "features": applicant()} for i in range(40)]
        for d, inst in zip(
            _predict(client, auth, {"instances": instances}).json()["decisions"],
            instances,
            strict=True,
        ):
            seen.setdefault(inst["subject_id"], set()).add(d["route"])
    assert all(len(r) == 1 for r in seen.values())
    assert {next(iter(r)) for r in seen.values()} == {"live", "canary"}


def test_shadows_are_logged_linked_and_never_returned(
    client: TestClient, auth, served: Served, engine: sa.Engine
) -> None:
    v1, v2 = served.versions
    config = {
        "routes": [{"model": "credit", "version": v1}],
        "shadows": [{"model": "credit", "version": v2}],
    }
    assert (
        client.put("/api/v1/endpoints/credit", headers=served.headers, json=config).status_code
        == 200
    )
    response = _predict(
        client,
        auth,
        {"instances": [{"features": applicant()}, {"features": applicant(income=90000.0)}]},
    )
    live = response.json()["decisions"]
    assert all(d["model"]["version"] == v1 and d["route"] == "live" for d in live)
    deadline = time.monotonic() + 10
    while len(_rows(engine, "shadow")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    shadows = _rows(engine, "shadow")
    assert sorted(s.parent_decision_id for s in shadows) == sorted(d["decision_id"] for d in live)
    assert all(s.version == v2 and s.route == "shadow" for s in shadows)
    record = client.get(
        f"/api/v1/decisions/{live[0]['decision_id']}", headers=auth(Role.compliance)
    ).json()
    assert len(record["shadows"]) == 1
    shadow_ids = {s.decision_id for s in shadows}
    assert not shadow_ids & {d["decision_id"] for d in live}


def test_decision_lookup_hides_protected_attributes_from_other_roles(
    client: TestClient, auth, served: Served
) -> None:
    decision = _predict(
        client,
        auth,
        {"features": applicant(), "context": {"sex": "F", "age": 61, "branch": "north"}},
    ).json()
    url = f"/api/v1/decisions/{decision['decision_id']}"
    for role in (Role.compliance, Role.admin):
        body = client.get(url, headers=auth(role)).json()
        assert body["context"] == {"sex": "F", "age": 61, "branch": "north"}
        assert body["redacted"] == []
    for role in (Role.appeals, Role.data_scientist):
        body = client.get(url, headers=auth(role)).json()
        # An allowlist: `branch` is declared public by neither the spec nor the endpoint.
        assert body["context"] == {}
        assert body["redacted"] == ["age", "branch", "sex"]
        assert "61" not in json.dumps(body["context"])
    body = client.get(url, headers=auth(Role.appeals)).json()
    assert body["features"] == applicant()
    assert body["score"] == decision["score"]
    assert body["lineage"]["dataset"]["commit"]
    assert body["lineage"]["seeds"] == {"split": 7, "estimator": 7, "explain": 0}
    assert client.get(url, headers=auth(Role.predictor)).status_code == 403
    assert client.get("/api/v1/decisions/not-a-uuid", headers=auth(Role.appeals)).status_code == 422
    assert (
        client.get(
            "/api/v1/decisions/00000000-0000-0000-0000-000000000000", headers=auth(Role.appeals)
        ).status_code
        == 404
    )


def _block_log(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                sa.text(
                    "CREATE TRIGGER block_log BEFORE INSERT ON decision BEGIN SELECT RAISE(ABORT, 'log volume unavailable'); END"
                )
            )
        else:
            conn.execute(
                sa.text(
                    "CREATE FUNCTION block_log() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'log volume unavailable'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                sa.text(
                    "CREATE TRIGGER block_log BEFORE INSERT ON decision FOR EACH ROW EXECUTE FUNCTION block_log()"
                )
            )


def _unblock_log(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "DROP TRIGGER block_log"
                + ("" if engine.dialect.name == "sqlite" else " ON decision")
            )
        )
        if engine.dialect.name != "sqlite":
            conn.execute(sa.text("DROP FUNCTION block_log()"))


def test_predict_fails_closed_when_the_log_cannot_be_written(
    client: TestClient, auth, served: Served, engine: sa.Engine
) -> None:
    _block_log(engine)
    try:
        response = _predict(client, auth, {"features": applicant()})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "decision_log_unavailable"
        assert "decision_id" not in response.text
        assert _rows(engine) == []
    finally:
        _unblock_log(engine)
    recovered = _predict(client, auth, {"features": applicant()})
    assert recovered.status_code == 200
    assert [r.decision_id for r in _rows(engine)] == [recovered.json()["decision_id"]]
    verify = client.get("/api/v1/audit/verify", headers=auth(Role.compliance)).json()
    assert verify["ok"] is True


def test_overload_is_shed_at_once_with_503_and_every_200_is_logged(
    settings, served: Served, make_key, engine: sa.Engine
) -> None:
    """Past predict_max_inflight, calls are refused before any work; none of them is logged."""
    app = create_app(settings.model_copy(update={"predict_max_inflight": 2}))
    headers = {"Authorization": f"Bearer {make_key(Role.predictor)}"}
    shed_before = metrics.PREDICT_SHED._value.get()

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://govern") as http:
            return await asyncio.gather(
                *(
                    http.post(
                        "/api/v1/endpoints/credit/predict",
                        headers=headers,
                        json={"subject_id": f"burst-{i}", "features": applicant(income=40_000 + i)},
                    )
                    for i in range(12)
                )
            )

    app.state.serving.start()
    try:
        responses = asyncio.run(burst())
    finally:
        app.state.serving.stop()
        app.state.engine.dispose()

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] >= 2 and statuses[503] >= 1, statuses
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.json()["error"]["code"] == "overloaded"
    assert refused.headers["retry-after"] == "1"
    assert metrics.PREDICT_SHED._value.get() - shed_before == statuses[503]
    answered = {r.json()["decision_id"] for r in responses if r.status_code == 200}
    assert {row.decision_id for row in _rows(engine, "decision")} == answered
    # A shed call is not a rejected attempt either: it never reached the service.
    assert _rows(engine, "rejected") == []


def test_a_challenger_that_dropped_a_feature_takes_the_same_applications_and_ignores_it(
    client: TestClient, auth, served: Served, settings, data_repo, engine: sa.Engine
) -> None:
    """A canary or a shadow trained without ``credit_history_months`` scores the applications
    the champion takes, without it; a feature no model of the endpoint uses is still refused."""
    from tests.support.factories import cached_model, spec_for

    features = [f for f in spec_for(data_repo)["features"] if f["name"] != "credit_history_months"]
    v1 = served.versions[0]
    fewer = cached_model(settings, data_repo, seed=7, features=features)
    config = {
        "routes": [
            {"model": "credit", "version": v1, "weight": 0.5},
            {"model": "credit", "version": fewer, "weight": 0.5},
        ],
        "shadows": [{"model": "credit", "version": fewer}],
    }
    put = client.put("/api/v1/endpoints/credit", headers=served.headers, json=config)
    assert put.status_code == 200, put.text
    instances = [{"features": applicant(income=20000.0 + 3000 * i)} for i in range(30)]
    made = _predict(client, auth, {"instances": instances}).json()["decisions"]
    routed = {d["model"]["version"] for d in made}
    assert routed == {v1, fewer}, "both routes answered"
    canary = next(d for d in made if d["model"]["version"] == fewer)
    logged = client.get(
        f"/api/v1/decisions/{canary['decision_id']}", headers=auth(Role.compliance)
    ).json()
    assert "credit_history_months" not in logged["features"], "what the model used is logged"
    deadline = time.monotonic() + 10
    while len(_rows(engine, "shadow")) < len(made) and time.monotonic() < deadline:
        time.sleep(0.05)
    shadows = _rows(engine, "shadow")
    assert sorted(s.parent_decision_id for s in shadows) == sorted(d["decision_id"] for d in made)

    unknown = client.post(
        "/api/v1/endpoints/credit/predict",
        headers=auth(Role.predictor),
        json={"features": {**applicant(), "shoe_size": 43}},
    )
    assert unknown.status_code == 422 and "features.shoe_size" in unknown.text
