"""The model inventory and the model card, against the stage history and the logged decisions."""

from __future__ import annotations

import html
import time
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

from core.auth.models import Role
from tests.conftest import Served
from tests.support.factories import applicant


def _stage(client: TestClient, served: Served, version: int, stage: str) -> str:
    response = client.post(
        f"/api/v1/models/credit/versions/{version}/stage",
        headers=served.headers,
        json={"stage": stage, "reason": f"test: {stage}"},
    )
    assert response.status_code in (200, 201), response.text
    time.sleep(0.05)
    return str(response.json()["at"])


def _production_from_history(history: list[dict[str, Any]], at: str) -> set[int]:
    stages: dict[int, str] = {}
    for change in history:
        if datetime.fromisoformat(change["at"]) <= datetime.fromisoformat(at):
            stages[change["version"]] = change["to_stage"]
    return {v for v, s in stages.items() if s == "production"}


def test_what_was_in_production_on_a_date_matches_the_stage_history(
    client: TestClient, auth: Any, served: Served
) -> None:
    v1, v2 = served.versions
    for _ in range(3):
        client.post(
            "/api/v1/endpoints/credit/predict",
            headers=auth(Role.predictor),
            json={"features": applicant(), "context": {"sex": "M", "age": 50}},
        )
    # v1 went to production when the endpoint was set up to serve it live.
    [promoted] = client.get("/api/v1/models/credit/stage-history", headers=served.headers).json()
    assert (promoted["version"], promoted["to_stage"]) == (v1, "production")
    moments = [promoted["at"], _stage(client, served, v2, "staging")]
    between = _stage(client, served, v2, "production")
    moments += [between, _stage(client, served, v1, "archived")]
    history = client.get("/api/v1/models/credit/stage-history", headers=served.headers).json()
    compliance = auth(Role.compliance)
    for at in moments:
        body = client.get(
            "/api/v1/inventory", headers=compliance, params={"at": at, "status": "in_use"}
        ).json()
        in_production = {i["version"] for i in body["versions"] if i["stage"] == "production"}
        assert in_production == _production_from_history(history, at), at
    now = client.get("/api/v1/inventory", headers=compliance).json()
    by_version = {i["version"]: i for i in now["versions"]}
    assert by_version[v1]["status"] == "retired" and by_version[v2]["status"] == "in_use"
    assert by_version[v1]["decisions"] == 3 and by_version[v2]["decisions"] == 0
    assert by_version[v1]["serving"][0]["endpoint"] == "credit"
    assert by_version[v1]["serving"][0]["route"] == "live"
    assert [h["to_stage"] for h in by_version[v1]["stage_history"]] == ["production", "archived"]
    assert by_version[v1]["owner"] == "test" and by_version[v1]["last_rebuild"] is None
    assert by_version[v1]["last_fairness_report"] is None
    retired = client.get("/api/v1/inventory", headers=compliance, params={"status": "retired"})
    assert [i["version"] for i in retired.json()["versions"]] == [v1]
    before = client.get(
        "/api/v1/inventory", headers=compliance, params={"at": "2000-01-01T00:00:00Z"}
    ).json()
    assert before["count"] == 0
    refused = client.get("/api/v1/inventory", headers=auth(Role.appeals))
    assert refused.status_code == 403


def test_the_card_and_its_html_carry_the_same_figures(
    client: TestClient, auth: Any, served: Served
) -> None:
    v1 = served.versions[0]
    for i in range(4):
        client.post(
            "/api/v1/endpoints/credit/predict",
            headers=auth(Role.predictor),
            json={
                "features": applicant(income=35_000.0 + 9_000 * i),
                "context": {"sex": "F", "age": 30},
            },
        )
    compliance = auth(Role.compliance)
    path = f"/api/v1/models/credit/versions/{v1}/card"
    card = client.get(path, headers=compliance)
    assert card.status_code == 200, card.text
    doc = card.json()
    assert doc["model"] == "credit" and doc["version"] == v1
    assert doc["data"]["sha256"] and doc["features"] and doc["gate"]["rule"]
    validation = doc["metrics"]["validation"]
    assert 0.5 < validation["roc_auc"] <= 1.0
    assert set(doc["metrics_by_group"]) == {"sex", "age"}
    [live] = doc["live_fairness"]
    assert live["endpoint"] == "credit" and live["n"] == 4
    assert doc["lineage"]["artifact_sha256"] == doc["lineage"]["artifact_sha256"]
    page = client.get(path, headers={**compliance, "Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = html.unescape(page.text)
    assert f"{validation['roc_auc']:.4f}" in text and f"{validation['accuracy']:.4f}" in text
    assert doc["gate"]["rule"] in text and doc["data"]["sha256"] in text
    for group, metrics in doc["metrics_by_group"]["sex"].items():
        assert group in text and f"{metrics['selection_rate']:.4f}" in text
    assert "Never rebuilt." in text
    inventory = client.get("/api/v1/inventory", headers=compliance).json()
    [entry] = [i for i in inventory["versions"] if i["version"] == v1]
    assert entry["last_fairness_report"]["endpoint"] == "credit", "the card ran one"
