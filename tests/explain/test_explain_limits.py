"""Issue 16: one key cannot make the service spend all its time on new explanations, and the
sampling explainers run in worker processes, giving there exactly what they give in process."""

from __future__ import annotations

import os
import threading

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.auth.models import Role
from core.config import Settings
from core.errors import TooManyRequests
from core.limits import KeyLimiter
from explain.service import logged_decision
from governance.app import create_app
from tests.conftest import KeyMaker, Served
from tests.support.factories import applicant

VOLATILE = {"cached", "computed_at", "compute_ms"}


def _decide(client: TestClient, headers: dict[str, str]) -> str:
    response = client.post(
        "/api/v1/endpoints/credit/predict",
        headers=headers,
        json={"features": applicant(income=24000.0, late_payments=4)},
    )
    assert response.status_code == 200, response.text
    decision_id: str = response.json()["decision_id"]
    return decision_id


@pytest.fixture
def capped(settings: Settings) -> FastAPI:
    return create_app(settings.model_copy(update={"explain_rate_per_minute": 2}))


def test_new_explanations_per_key_are_capped_and_stored_ones_are_not(
    capped: FastAPI, served: Served, make_key: KeyMaker
) -> None:
    appeals = {"Authorization": f"Bearer {make_key(Role.appeals)}"}
    other = {"Authorization": f"Bearer {make_key(Role.appeals)}"}
    with TestClient(capped) as client:
        decision = _decide(client, {"Authorization": f"Bearer {make_key(Role.predictor)}"})
        path = f"/api/v1/decisions/{decision}/robustness"
        for seed in (1, 2):
            assert client.get(path, headers=appeals, params={"seed": seed}).status_code == 200
        refused = client.get(path, headers=appeals, params={"seed": 3})
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.json()["error"]["details"]["limit"] == "rate"
        stored = client.get(path, headers=appeals, params={"seed": 1})
        assert stored.status_code == 200 and stored.json()["cached"] is True
        assert client.get(path, headers=other, params={"seed": 3}).status_code == 200
        # Rebuilds draw on the same share.
        rebuild = client.post(f"/api/v1/decisions/{decision}/rebuild", headers=appeals)
        assert rebuild.status_code == 429


def test_the_limiter_caps_concurrency_and_the_minute_per_key() -> None:
    now = [1000.0]
    limiter = KeyLimiter(concurrency=1, per_minute=3, clock=lambda: now[0])
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with limiter.slot("a", "explanations"):
            entered.set()
            release.wait(10)

    worker = threading.Thread(target=hold)
    worker.start()
    assert entered.wait(10)
    with pytest.raises(TooManyRequests) as busy:
        limiter.admit("a", "explanations", hold=True)
    assert busy.value.details["limit"] == "concurrency"
    limiter.admit("b", "explanations", hold=False)  # another key is not affected
    release.set()
    worker.join()
    limiter.admit("a", "explanations")
    limiter.admit("a", "explanations")
    with pytest.raises(TooManyRequests) as rate:
        limiter.admit("a", "explanations")
    assert rate.value.headers == {"Retry-After": "60"}
    now[0] += 60.5
    limiter.admit("a", "explanations")  # the first start has left the minute


@pytest.fixture
def pooled(settings: Settings) -> FastAPI:
    return create_app(settings.model_copy(update={"explain_workers": 1}))


METHODS = [
    ("anchor", "explanations/anchor", {"threshold": 0.95, "seed": 4}),
    ("counterfactual", "explanations/counterfactual", {"k": 3, "seed": 4}),
    ("robustness", "robustness", {"seed": 4}),
]


def test_sampling_explainers_run_in_a_worker_process_with_the_same_result(
    sqlite_only: None, pooled: FastAPI, app: FastAPI, served: Served, make_key: KeyMaker
) -> None:
    headers = {"Authorization": f"Bearer {make_key(Role.compliance)}"}
    answers = {}
    with TestClient(pooled) as client:
        decision = _decide(client, {"Authorization": f"Bearer {make_key(Role.predictor)}"})
        for method, path, params in METHODS:
            response = client.get(
                f"/api/v1/decisions/{decision}/{path}", headers=headers, params=params
            )
            assert response.status_code == 200, response.text
            answers[method] = {k: v for k, v in response.json().items() if k not in VOLATILE}
        pool = pooled.state.explainers.pool
        assert pool is not None and pool._pool is not None
        workers = list(pool._pool._processes)
        assert workers and os.getpid() not in workers

    in_process = app.state.explainers  # explain_workers=0: the server's own interpreter
    assert in_process.pool is None
    with app.state.sessions() as session:
        logged = logged_decision(session, decision)
    for method, from_worker in answers.items():
        result = in_process.compute(logged, method, from_worker["params"])
        for key, value in result.items():
            assert from_worker[key] == value, (method, key)
