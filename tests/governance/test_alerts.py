"""Boundary probing: a scripted burst raises one stored alert; ordinary traffic raises none."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.auth.models import Role
from core.config import Settings
from core.db import session_factory, transaction
from governance.audit.alerts import Scanner, scan
from governance.demo import run_demo
from lineage.synthetic import applicant_features, generate_loans
from tests.conftest import KeyMaker, Served
from tests.support.factories import applicant

PREDICT = "/api/v1/endpoints/credit/predict"


def _predict(client: TestClient, headers: dict[str, str], features: dict[str, Any]) -> Any:
    response = client.post(PREDICT, headers=headers, json={"features": features})
    assert response.status_code == 200, response.text
    return response.json()


def _probe(client: TestClient, headers: dict[str, str], steps: int) -> str:
    """What a prober does: bisect income to the decision boundary, then walk along it."""
    low, high = 5_000.0, 400_000.0
    first = _predict(client, headers, applicant(income=low))
    for _ in range(14):
        middle = (low + high) / 2
        answer = _predict(client, headers, applicant(income=middle))
        if answer["label"] == first["label"]:
            low = middle
        else:
            high = middle
    for i in range(steps):
        _predict(client, headers, applicant(income=low + 40.0 * (i - steps // 2)))
    return str(first["decision_id"])


def _key_of(client: TestClient, auth: Any, decision_id: str) -> str:
    record = client.get(f"/api/v1/decisions/{decision_id}", headers=auth(Role.compliance))
    return str(record.json()["key_id"])


def _ordinary_traffic(client: TestClient, headers: dict[str, str], n: int, seed: int) -> None:
    for row in generate_loans(n, seed=seed).to_dict("records"):
        _predict(client, headers, applicant_features(row))


def test_a_scripted_probing_burst_raises_one_alert_and_ordinary_traffic_none(
    settings: Settings, client: TestClient, auth: Any, make_key: KeyMaker, served: Served
) -> None:
    ordinary = {"Authorization": f"Bearer {make_key(Role.predictor, name='branch office')}"}
    prober = {"Authorization": f"Bearer {make_key(Role.predictor, name='partner api')}"}
    _ordinary_traffic(client, ordinary, 120, seed=11)
    probe_decision = _probe(client, prober, steps=40)
    prober_key = _key_of(client, auth, probe_decision)

    # The background scanner finds it on its own.
    fast = settings.model_copy(update={"probe_scan_interval_s": 0.2})
    scanner = Scanner(client.app.state.sessions, fast)
    scanner.start()
    listing: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listing = client.get("/api/v1/audit/alerts", headers=auth(Role.data_scientist)).json()
            if listing["count"]:
                break
            time.sleep(0.2)
    finally:
        scanner.stop()
    assert listing["count"] == 1, listing
    alert = listing["data"][0]
    assert alert["kind"] == "probing" and alert["key_id"] == prober_key
    assert alert["endpoint"] == "credit" and alert["version"] == served.versions[0]
    assert alert["requests"] >= settings.probe_min_requests
    detail = alert["detail"]
    low, high = detail["score_range"]
    assert detail["threshold"] - detail["score_band"] <= low <= high
    assert high <= detail["threshold"] + detail["score_band"]

    # Scanning again extends the same episode instead of opening another alert.
    again = client.post("/api/v1/audit/alerts/scan", headers=auth(Role.compliance))
    assert again.status_code == 200, again.text
    assert [a["alert_id"] for a in again.json()] == [alert["alert_id"]]
    listing = client.get(
        "/api/v1/audit/alerts", headers=auth(Role.admin), params={"key_id": prober_key}
    ).json()
    assert listing["count"] == 1
    assert (
        client.get(
            "/api/v1/audit/alerts", headers=auth(Role.admin), params={"key_id": "nobody"}
        ).json()["count"]
        == 0
    )
    assert 'govern_probing_alerts_total{endpoint="credit"}' in client.get("/metrics").text


@pytest.mark.parametrize("role", [Role.appeals, Role.predictor, Role.outcomes])
def test_alerts_are_refused_to_other_roles(client: TestClient, auth: Any, role: Role) -> None:
    assert client.get("/api/v1/audit/alerts", headers=auth(role)).status_code == 403
    assert client.post("/api/v1/audit/alerts/scan", headers=auth(role)).status_code == 403


def test_the_demo_traffic_raises_no_alert(
    settings: Settings, client: TestClient, auth: Any
) -> None:
    assert run_demo(settings) is True
    with transaction(session_factory(client.app.state.engine)) as session:
        assert scan(session, settings) == []
    listing = client.get("/api/v1/audit/alerts", headers=auth(Role.compliance)).json()
    assert listing["count"] == 0
