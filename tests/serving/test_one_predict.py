"""Both transports decode to the same typed request and go through one predict: the same input
gives the same decision, the same record, and the same rejection, whichever protocol sent it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import sqlalchemy as sa
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from core.auth.models import Role
from core.config import Settings
from core.db import session_factory
from serving import router as serving_router
from serving import v2
from serving.decoding import Accepted, Refused, decode_json
from serving.models import DecisionRecord
from serving.state import Serving
from tests.conftest import Served
from tests.support.factories import applicant

DECISIONS = DecisionRecord.__table__
# What differs between two records of the same decision: when, and which record.
PER_RECORD = {"decision_id", "created_at", "latency_ms"}


def _v2_body(rows: list[dict[str, Any]], **parameters: Any) -> dict[str, Any]:
    inputs = [
        {
            "name": name,
            "shape": [len(rows)],
            "datatype": "BYTES" if isinstance(rows[0][name], str) else "FP64",
            "data": [row[name] for row in rows],
        }
        for name in rows[0]
    ]
    body: dict[str, Any] = {"id": "req-7", "inputs": inputs}
    if parameters:
        body["parameters"] = parameters
    return body


def _v1_body(rows: list[dict[str, Any]], subject_ids: list[str], contexts: list[dict]) -> bytes:
    instances = [
        {"features": row, "subject_id": subject, "context": context}
        for row, subject, context in zip(rows, subject_ids, contexts, strict=True)
    ]
    return json.dumps({"instances": instances}).encode()


def test_both_transports_decode_to_the_same_typed_request() -> None:
    rows = [applicant(income=30000.0), applicant(income=90000.0, purpose="home")]
    subjects, contexts = ["a-1", "a-2"], [{"sex": "F"}, {"sex": "M", "age": 40}]
    body, from_v2 = v2.decode(
        json.dumps(_v2_body(rows, subject_ids=subjects, contexts=contexts)).encode()
    )
    from_v1 = decode_json(_v1_body(rows, subjects, contexts))
    assert isinstance(from_v2, Accepted) and isinstance(from_v1, Accepted)
    assert from_v2.request == from_v1.request
    assert body["id"] == "req-7"
    # A refused V2 body never reaches the typed request, and names its field.
    _body, refused = v2.decode(b'{"inputs": []}')
    assert isinstance(refused, Refused)
    assert refused.error.details == [
        {"field": "inputs", "message": "a V2 request needs a non-empty inputs list"}
    ]


def _contents(engine: sa.Engine, kind: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        payloads = conn.execute(
            sa.select(DECISIONS.c.payload).where(DECISIONS.c.kind == kind).order_by(DECISIONS.c.seq)
        ).scalars()
        return [json.loads(p) for p in payloads]


def _without(content: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in content.items() if k not in keys}


def test_v1_and_v2_log_identical_decisions(
    client: TestClient, auth, served: Served, engine: sa.Engine
) -> None:
    headers = auth(Role.predictor)
    rows = [applicant(income=25000.0), applicant(income=75000.0, housing="own")]
    subjects, contexts = ["p-1", "p-2"], [{"sex": "F"}, {"sex": "M"}]
    native = client.post(
        "/api/v1/endpoints/credit/predict",
        headers={**headers, "Content-Type": "application/json"},
        content=_v1_body(rows, subjects, contexts),
    )
    assert native.status_code == 200, native.text
    inferred = client.post(
        "/v2/models/credit/infer",
        headers=headers,
        json=_v2_body(rows, subject_ids=subjects, contexts=contexts),
    )
    assert inferred.status_code == 200, inferred.text

    v1_out = native.json()["decisions"]
    outputs = {o["name"]: o["data"] for o in inferred.json()["outputs"]}
    assert outputs["score"] == [d["score"] for d in v1_out]
    assert outputs["label"] == [d["label"] for d in v1_out]
    logged = _contents(engine, "decision")
    assert len(logged) == 4
    by_id = {c["decision_id"]: c for c in logged}
    for v1_id, v2_id in zip(
        [d["decision_id"] for d in v1_out], outputs["decision_id"], strict=True
    ):
        assert _without(by_id[v1_id], PER_RECORD) == _without(by_id[v2_id], PER_RECORD)
        assert by_id[v1_id]["features"] != {}  # the comparison saw real content


def test_v1_and_v2_log_identical_rejections(
    client: TestClient, auth, served: Served, engine: sa.Engine
) -> None:
    headers = auth(Role.predictor)
    rows = [applicant(), applicant(purpose="yacht", income=-5.0)]
    subjects, contexts = ["r-1", "r-2"], [{"sex": "F"}, {"sex": "M"}]
    native = client.post(
        "/api/v1/endpoints/credit/predict",
        headers={**headers, "Content-Type": "application/json"},
        content=_v1_body(rows, subjects, contexts),
    )
    inferred = client.post(
        "/v2/models/credit/infer",
        headers=headers,
        json=_v2_body(rows, subject_ids=subjects, contexts=contexts),
    )
    assert native.status_code == inferred.status_code == 422
    problems = native.json()["error"]["details"]["problems"]
    assert problems == inferred.json()["error"]["details"]["problems"]
    assert {p["field"] for p in problems} >= {"instances.1.features.purpose"}
    first, second = _contents(engine, "rejected")
    assert _without(first, PER_RECORD) == _without(second, PER_RECORD)
    assert first["request"]["instances"][1]["features"]["purpose"] == "yacht"


def test_predict_metrics_count_each_transport_once(
    client: TestClient, auth, served: Served
) -> None:
    def count(status: str) -> float:
        for family in text_string_to_metric_families(client.get("/metrics").text):
            for sample in family.samples:
                if sample.name == "govern_predict_requests_total" and sample.labels == {
                    "endpoint": "credit",
                    "status": status,
                }:
                    return sample.value
        return 0.0

    headers = auth(Role.predictor)
    ok, bad = count("200"), count("422")
    client.post("/api/v1/endpoints/credit/predict", headers=headers, json={"features": applicant()})
    client.post("/v2/models/credit/infer", headers=headers, json=_v2_body([applicant()]))
    client.post("/api/v1/endpoints/credit/predict", headers=headers, json={"features": {}})
    client.post("/v2/models/credit/infer", headers=headers, json={"inputs": []})
    assert (count("200") - ok, count("422") - bad) == (2, 2)


def test_the_admission_semaphore_is_made_with_the_serving_state(
    settings: Settings, engine: sa.Engine
) -> None:
    limited = settings.model_copy(update={"predict_concurrency": 2})
    serving = Serving.create(limited, session_factory(engine))

    async def fill() -> tuple[bool, bool]:
        await serving.admission.acquire()
        after_one = serving.admission.locked()
        await serving.admission.acquire()
        return after_one, serving.admission.locked()

    assert asyncio.run(fill()) == (False, True)


# (prefix in the app, router): every route govern serves predictions, decisions and outcomes on.
SERVING_ROUTERS = [
    ("/api/v1", serving_router.router),
    ("", v2.router),
    ("", v2.health),
]


def test_every_serving_route_documents_a_typed_success_body(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    checked = 0
    for prefix, router in SERVING_ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            for method in route.methods:
                operation = spec["paths"][prefix + route.path][method.lower()]
                success = [c for c in operation["responses"] if c.startswith("2")]
                assert success, (method, route.path)
                for code in success:
                    schema = operation["responses"][code]["content"]["application/json"]["schema"]
                    assert _typed(schema, spec), (method, route.path, code, schema)
                    checked += 1
    assert checked >= 12


def _typed(schema: dict[str, Any], spec: dict[str, Any]) -> bool:
    """A $ref to a model with properties, a list of typed items, or a union of typed bodies."""
    if "$ref" in schema:
        target = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        return bool(target.get("properties"))
    if "anyOf" in schema:
        return all(_typed(option, spec) for option in schema["anyOf"])
    if schema.get("type") == "array":
        return _typed(schema["items"], spec)
    return schema.get("type") in {"string", "integer", "number", "boolean"}
