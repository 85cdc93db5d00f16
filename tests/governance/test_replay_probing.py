"""Replays count as probing: scoring a logged decision again with small changes near the
threshold maps the boundary as well as predict does, so the scan counts them too."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.auth.models import Role
from core.config import Settings
from core.db import session_factory, transaction
from governance.audit.alerts import scan
from tests.conftest import KeyMaker, Served
from tests.support.factories import applicant

REPLAYS = 12


@pytest.fixture
def rules(settings: Settings) -> Settings:
    return settings.model_copy(update={"probe_min_requests": 10})


def _key_id(secret: str) -> str:
    return secret.split("_", 2)[1]


def _boundary_income(client: TestClient, version: int) -> float:
    """The income at which the model's label flips for the test applicant (found in process, so
    no request is logged on the way)."""
    model = client.app.state.serving.model("credit", version)
    low, high = 5_000.0, 400_000.0
    first = model.label_for(model.scores([applicant(income=low)])[0])
    for _ in range(30):
        middle = (low + high) / 2
        if model.label_for(model.scores([applicant(income=middle)])[0]) == first:
            low = middle
        else:
            high = middle
    return low


def _decide(client: TestClient, headers: dict[str, str], income: float) -> dict[str, Any]:
    response = client.post(
        "/api/v1/endpoints/credit/predict",
        headers=headers,
        json={"features": applicant(income=income)},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _replay(
    client: TestClient, headers: dict[str, str], decision_id: str, income: float
) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/decisions/{decision_id}/replay",
        headers=headers,
        json={"overrides": {"income": income}},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _scan(client: TestClient, rules: Settings) -> list[Any]:
    with transaction(session_factory(client.app.state.engine)) as session:
        return [(a.key_id, a.version, a.requests, dict(a.detail)) for a in scan(session, rules)]


def test_near_threshold_replays_of_one_decision_raise_an_alert_naming_the_key(
    rules: Settings, client: TestClient, auth: Any, make_key: KeyMaker, served: Served
) -> None:
    boundary = _boundary_income(client, served.versions[0])
    decision = _decide(client, auth(Role.predictor), boundary)
    assert abs(decision["score"] - 0.5) <= rules.probe_score_band

    prober = make_key(Role.appeals, name="appeals tool")
    spread = make_key(Role.appeals, name="appeals desk")
    answers = [
        _replay(client, {"Authorization": f"Bearer {prober}"}, decision["decision_id"], income)
        for income in (boundary + 40.0 * (i - REPLAYS // 2) for i in range(REPLAYS))
    ]
    near = [a for a in answers if abs(a["replay"]["score"] - 0.5) <= rules.probe_score_band]
    assert len(near) >= rules.probe_min_requests, "the replays did not land near the threshold"
    for i in range(REPLAYS):  # far-apart incomes: a person trying real alternatives
        _replay(
            client,
            {"Authorization": f"Bearer {spread}"},
            decision["decision_id"],
            10_000.0 + 30_000.0 * i,
        )

    raised = _scan(client, rules)
    assert [(key, version) for key, version, _, _ in raised] == [
        (_key_id(prober), served.versions[0])
    ]
    [(_, _, requests, detail)] = raised
    assert requests >= rules.probe_min_requests
    assert detail["from_replays"] == len(near)
    assert detail["near_duplicates_from_replays"] == requests
    assert detail["replayed_decisions"] == [decision["decision_id"]]
    low, high = detail["score_range"]
    assert 0.5 - rules.probe_score_band <= low <= high <= 0.5 + rules.probe_score_band

    listing = client.get(
        "/api/v1/audit/alerts", headers=auth(Role.compliance), params={"kind": "probing"}
    ).json()
    assert [a["key_id"] for a in listing["data"]] == [_key_id(prober)]
    assert listing["data"][0]["endpoint"] == "credit"


def test_a_keys_decisions_and_replays_count_together(
    rules: Settings, client: TestClient, make_key: KeyMaker, served: Served
) -> None:
    boundary = _boundary_income(client, served.versions[0])
    both = {"Authorization": f"Bearer {make_key(Role.admin, name='script')}"}
    decisions = [_decide(client, both, boundary + 40.0 * i) for i in range(6)]
    for i in range(6):
        _replay(client, both, decisions[0]["decision_id"], boundary - 40.0 * (i + 1))
    # Six of each: neither alone reaches the ten the rules ask for.
    [(key, _, requests, detail)] = _scan(client, rules)
    assert key == _key_id(both["Authorization"].removeprefix("Bearer "))
    assert detail["from_replays"] == 6 and detail["near_threshold"] == 12
    assert requests == 12
