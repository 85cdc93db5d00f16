"""Recorded documents keep their bodies under their response models (issue 18, typed responses).

A model version's input schema, metrics, gate and lineage, an endpoint's configuration and a
logged decision are served through typed models. Each body must be the stored document itself:
the same keys (a null where one was stored, no default added to an older document), the same
values and the same JSON types (an integer code stays an integer). Key order is not compared:
PostgreSQL's JSONB gives documents back in its own order.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import col, select

from core.auth.models import Role
from core.db import transaction
from lineage import registry
from serving.models import DecisionRecord, EndpointConfig
from tests.conftest import Served
from tests.support.factories import book_applicant


def typed(value: Any) -> Any:
    """A JSON value to compare with its types: 1, 1.0 and true differ; key order does not."""
    if isinstance(value, dict):
        return sorted((k, typed(v)) for k, v in value.items())
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def stored(value: Any) -> Any:
    """A stored document as JSON gives it back (what the routes served before their models)."""
    return typed(json.loads(json.dumps(value)))


def test_a_versions_documents_are_served_as_recorded(
    client: TestClient, app: FastAPI, auth: Any, served_book: Served
) -> None:
    [number] = served_book.versions
    path = f"/api/v1/models/loanbook/versions/{number}"
    version = client.get(path, headers=auth(Role.data_scientist))
    lineage = client.get(f"{path}/lineage", headers=auth(Role.compliance))
    assert version.status_code == 200 and lineage.status_code == 200, lineage.text
    with transaction(app.state.sessions) as session:
        _, row = registry.get_version(session=session, name="loanbook", version=number)
        summary = registry.lineage_summary(session, row)
        recorded = (row.input_schema, row.metrics, row.lineage)
    input_schema, metrics, document = recorded
    body = version.json()
    assert typed(body["input_schema"]) == stored(input_schema)
    assert typed(body["metrics"]) == stored(metrics)
    assert typed(body["gate"]) == stored(document["gate"])
    assert typed(lineage.json()["lineage"]) == stored(document)

    answer = client.post(
        "/api/v1/endpoints/lending/predict",
        headers=auth(Role.predictor),
        json={"features": book_applicant(purpose=None), "context": {"region": "north", "n": 2}},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["label"] in input_schema["classes"]
    record = client.get(
        f"/api/v1/decisions/{answer.json()['decision_id']}", headers=auth(Role.compliance)
    ).json()
    assert typed(record["features"]) == stored(book_applicant(purpose=None))
    assert typed(record["context"]) == stored({"region": "north", "n": 2})
    assert typed(record["label"]) == typed(answer.json()["label"])
    assert typed(record["lineage"]) == stored(summary)
    assert record["reason"] is None


def test_a_rejection_is_served_with_its_reason_as_logged(
    client: TestClient, app: FastAPI, auth: Any, served_book: Served
) -> None:
    refused = client.post(
        "/api/v1/endpoints/lending/predict",
        headers=auth(Role.predictor),
        json={"features": book_applicant(age="old")},
    )
    assert refused.status_code == 422, refused.text
    rejection_id = refused.json()["error"]["details"]["rejection_id"]
    record = client.get(f"/api/v1/decisions/{rejection_id}", headers=auth(Role.compliance))
    assert record.status_code == 200, record.text
    with transaction(app.state.sessions) as session:
        row = session.exec(
            select(DecisionRecord).where(DecisionRecord.decision_id == rejection_id)
        ).one()
        payload = json.loads(row.payload or "null")
    body = record.json()
    assert typed(body["reason"]) == stored(payload["reason"])
    assert body["label"] is None and body["features"] is None and body["context"] is None


def test_an_older_endpoint_configuration_reads_back_without_added_keys(
    client: TestClient, app: FastAPI, served_book: Served
) -> None:
    """A configuration stored before ``sticky`` and ``public_context`` existed has neither."""
    headers = served_book.headers
    changed = client.put(
        "/api/v1/endpoints/lending",
        headers=headers,
        json={
            "routes": [{"model": "loanbook", "version": served_book.versions[0], "weight": 2}],
            "public_context": ["region"],
        },
    )
    assert changed.status_code == 200, changed.text
    older = {"routes": [{"model": "loanbook", "version": 1, "weight": 1.0, "name": "live"}]}
    with transaction(app.state.sessions) as session:
        first = session.exec(select(EndpointConfig).order_by(col(EndpointConfig.id))).first()
        assert first is not None
        first.config = older
        session.add(first)
    with transaction(app.state.sessions) as session:
        configs = [
            c.config
            for c in session.exec(select(EndpointConfig).order_by(col(EndpointConfig.id))).all()
        ]
    body = client.get("/api/v1/endpoints/lending", headers=headers).json()
    assert typed(body["config"]) == stored(configs[-1])
    assert body["config"]["routes"][0]["weight"] == 2.0
    assert [typed(h["new"]) for h in body["history"]] == [stored(c) for c in configs]
    assert typed(body["history"][1]["old"]) == stored(older)
    assert body["history"][0]["old"] is None
