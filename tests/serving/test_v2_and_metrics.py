from __future__ import annotations

import json

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from core.auth.models import Role
from serving.metrics import REJECTION_REASONS, UNKNOWN_ENDPOINT
from tests.conftest import Served
from tests.support.factories import applicant


def _v2_body(features: dict, subject: str | None = None) -> bytes:
    inputs = []
    for name, value in features.items():
        datatype = (
            "BYTES" if isinstance(value, str) else ("INT64" if isinstance(value, int) else "FP64")
        )
        inputs.append({"name": name, "shape": [1], "datatype": datatype, "data": [value]})
    body: dict = {"id": "req-1", "inputs": inputs}
    if subject:
        body["parameters"] = {"subject_id": subject, "context": {"sex": "M"}}
    return json.dumps(body).encode()


def test_v2_infer_gives_the_same_decision_as_the_native_route(
    client: TestClient, auth, served: Served
) -> None:
    headers = {**auth(Role.predictor), "Content-Type": "application/json"}
    features = applicant(income=61000.0)
    native = client.post(
        "/api/v1/endpoints/credit/predict", headers=headers, json={"features": features}
    ).json()
    response = client.post(
        "/v2/models/credit/infer", headers=headers, content=_v2_body(features, "subj-9")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "credit"
    assert body["id"] == "req-1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["score"]["data"] == [native["score"]]
    assert outputs["label"] == {
        "name": "label",
        "shape": [1],
        "datatype": "INT64",
        "data": [native["label"]],
    }
    decision_id = outputs["decision_id"]["data"][0]
    record = client.get(f"/api/v1/decisions/{decision_id}", headers=auth(Role.compliance)).json()
    assert record["subject_id"] == "subj-9"
    assert record["context"] == {"sex": "M"}
    assert record["features"] == features


def test_v2_batch_and_metadata(client: TestClient, auth, served: Served) -> None:
    headers = auth(Role.predictor)
    meta = client.get("/v2/models/credit", headers=headers).json()
    assert {i["name"] for i in meta["inputs"]} == set(applicant())
    assert client.get("/v2/models/credit/ready", headers=headers).json()["ready"] is True
    rows = [applicant(income=20000.0 + 5000 * i) for i in range(3)]
    inputs = [
        {
            "name": k,
            "shape": [3, 1],
            "datatype": "BYTES" if isinstance(rows[0][k], str) else "FP64",
            "data": [[r[k]] for r in rows],
        }
        for k in rows[0]
    ]
    body = client.post("/v2/models/credit/infer", headers=headers, json={"inputs": inputs}).json()
    assert [o["shape"] for o in body["outputs"]] == [[3], [3], [3]]
    assert client.get("/v2/health/ready").json() == {"ready": True}


def test_v2_bad_requests_are_422_and_logged(client: TestClient, auth, served: Served) -> None:
    headers = auth(Role.predictor)
    bad = [
        {"inputs": []},
        {"inputs": [{"name": "income", "shape": [2], "datatype": "FP64", "data": [1.0]}]},
        {"inputs": [{"name": "income", "shape": [1], "datatype": "COMPLEX", "data": [1.0]}]},
        {"inputs": [{"name": "income", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
    ]
    for body in bad:
        response = client.post("/v2/models/credit/infer", headers=headers, json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["details"]["rejection_id"]
    assert (
        client.post("/v2/models/credit/infer", headers=auth(Role.appeals), json=bad[0]).status_code
        == 403
    )


def test_v2_parameters_that_are_not_lists_are_422_naming_the_field(
    client: TestClient, auth, served: Served
) -> None:
    one_row = [{"name": "income", "shape": [1], "datatype": "FP64", "data": [1.0]}]
    for name, value in (("subject_ids", 5), ("contexts", {"sex": "M"}), ("subject_ids", "s-1")):
        body = {"inputs": one_row, "parameters": {name: value}}
        response = client.post("/v2/models/credit/infer", headers=auth(Role.predictor), json=body)
        assert response.status_code == 422, (name, value, response.text)
        assert f"parameters.{name}" in response.text


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_parse_and_count(client: TestClient, auth, served: Served) -> None:
    before = _samples(client.get("/metrics").text)
    headers = auth(Role.predictor)
    for i in range(3):
        client.post(
            "/api/v1/endpoints/credit/predict",
            headers=headers,
            json={"features": applicant(income=40000.0 + i)},
        )
    client.post(
        "/api/v1/endpoints/credit/predict",
        headers=headers,
        json={"features": applicant(income="x")},
    )
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = _samples(response.text)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    v1 = str(served.versions[0])
    assert (
        delta("govern_decisions_total", endpoint="credit", model="credit", version=v1, route="live")
        == 3
    )
    assert delta("govern_predict_requests_total", endpoint="credit", status="200") == 3
    assert delta("govern_predict_requests_total", endpoint="credit", status="422") == 1
    assert delta("govern_rejections_total", endpoint="credit", reason="features") == 1
    assert delta("govern_predict_latency_seconds_count", endpoint="credit") == 4
    assert delta("govern_decision_log_write_seconds_count") >= 4
    assert ("govern_decision_log_queue_depth", ()) in after


def _metric_labels(client: TestClient) -> list[dict[str, str]]:
    text = client.get("/metrics").text
    return [
        sample.labels
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if family.name.startswith("govern_")
    ]


def test_callers_cannot_grow_the_metrics_or_the_log_without_bound(
    client: TestClient, auth, served: Served, engine
) -> None:
    """Issue 16: endpoint names from the path and JSON keys from the body became metric labels,
    and a rejected record stored a 400 KB field name twice."""
    import sqlalchemy as sa

    from serving.models import DecisionRecord

    DECISIONS = DecisionRecord.__table__
    headers = auth(Role.predictor)
    for i in range(20):
        client.post(
            f"/api/v1/endpoints/made-up-{i}/predict", headers=headers, json={"features": {}}
        )
        client.post(f"/v2/models/made-up-v2-{i}/infer", headers=headers, json={"inputs": []})
    huge = "k" * 400_000
    bodies = [
        {"features": applicant(), "x" * 1000: 1, f"{huge}": 2},
        {"features": {**applicant(), huge: 1}},
        {"features": applicant(), "subject_id": "s" * 5000, "context": {"n": list(range(5000))}},
    ]
    for body in bodies:
        assert (
            client.post("/api/v1/endpoints/credit/predict", headers=headers, json=body).status_code
            == 422
        )
    labels = _metric_labels(client)
    # The registry is the process's: other tests' endpoints may be there, never these names.
    endpoints = {lab["endpoint"] for lab in labels if "endpoint" in lab}
    assert not any(name.startswith("made-up") for name in endpoints), endpoints
    assert UNKNOWN_ENDPOINT in endpoints
    reasons = {lab["reason"] for lab in labels if "reason" in lab}
    assert reasons <= REJECTION_REASONS | {"other"}
    assert "other" in reasons
    assert max(len(value) for lab in labels for value in lab.values()) < 100

    with engine.connect() as conn:
        rows = (
            conn.execute(sa.select(DECISIONS.c.payload).where(DECISIONS.c.kind == "rejected"))
            .scalars()
            .all()
        )
    assert len(rows) == 3
    for payload in rows:
        assert len(payload) < 40_000, len(payload)
        content = json.loads(payload)
        assert content["truncated"]["reason"] or content["truncated"]["request"]
    assert any("more characters" in payload for payload in rows)
