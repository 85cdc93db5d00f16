"""A one-row predict made while no other is in progress is planned on the event loop only when
everything it needs is in memory: the endpoint's configuration, fresh, and every model it routes
to, loaded. Otherwise (a cold start, an expired configuration, a batch, other calls in flight) it
is planned on a worker thread; both give the same decision."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.auth.models import Role
from serving.state import Serving
from tests.conftest import KeyMaker, Served
from tests.support.factories import applicant

PATH = "/api/v1/endpoints/credit/predict"


def test_one_row_is_planned_from_memory_once_config_and_models_are_loaded(
    app: FastAPI, client: TestClient, served: Served, make_key: KeyMaker
) -> None:
    serving: Serving = app.state.serving
    headers = {"Authorization": f"Bearer {make_key(Role.predictor)}"}
    serving.forget("credit")
    assert serving.resident("credit") is None, "nothing in memory: planned on a worker thread"

    cold = client.post(PATH, headers=headers, json={"features": applicant()})
    assert cold.status_code == 200, cold.text
    resident = serving.resident("credit")
    assert resident is not None
    assert [(r.model, r.version) for r in resident.config.routes] == list(resident.models)
    assert list(resident.models) == [("credit", served.versions[0])]

    warm = client.post(PATH, headers=headers, json={"features": applicant()})
    assert warm.status_code == 200, warm.text
    assert (warm.json()["score"], warm.json()["label"]) == (
        cold.json()["score"],
        cold.json()["label"],
    ), "the same input gets the same decision on either path"
    assert warm.json()["decision_id"] != cold.json()["decision_id"]

    serving.forget("credit")  # as when the configuration's time in memory runs out
    assert serving.resident("credit") is None


def test_a_batch_and_a_refused_row_are_answered_alike_on_either_path(
    app: FastAPI, client: TestClient, served: Served, make_key: KeyMaker
) -> None:
    headers = {"Authorization": f"Bearer {make_key(Role.predictor)}"}
    bad = {"features": {**applicant(), "income": "lots"}}
    refused = []
    for _ in range(2):  # cold, then from memory
        response = client.post(PATH, headers=headers, json=bad)
        assert response.status_code == 422, response.text
        refused.append([d["field"] for d in response.json()["error"]["details"]["problems"]])
    assert refused == [["features.income"], ["features.income"]]
    batch = client.post(
        PATH, headers=headers, json={"instances": [{"features": applicant()} for _ in range(3)]}
    )
    assert batch.status_code == 200, batch.text
    assert len(batch.json()["decisions"]) == 3
