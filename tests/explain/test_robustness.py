from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from explain.models import Explanation
from governance.auth.models import Role
from tests.conftest import Served
from tests.support.factories import applicant

IMMUTABLE = {"credit_history_months", "late_payments", "housing"}
VOLATILE = {"cached", "computed_at", "compute_ms"}


def _decide(client: TestClient, auth, features: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        "/api/v1/endpoints/credit/predict",
        headers=auth(Role.predictor),
        json={"features": features, "context": {"sex": "M", "age": 33}},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_the_smallest_flip_is_real_respects_the_spec_and_repeats_exactly(
    client: TestClient, auth, served: Served, engine: sa.Engine
) -> None:
    decisions = [
        _decide(client, auth, applicant(income=income, debt_to_income=dti))
        for income, dti in ((52_000.0, 0.31), (30_000.0, 0.5), (90_000.0, 0.1))
    ]
    headers = auth(Role.appeals)
    for decision in decisions:
        path = f"/api/v1/decisions/{decision['decision_id']}/robustness"
        first = client.get(path, headers=headers)
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["verdict"] in {"fragile", "robust"}
        assert body["label"] == decision["label"] and body["seed"] == 0
        assert body["threshold"]["fragile_below"] == 0.1
        if body["perturbation"] is None:
            assert body["verdict"] == "robust"
            continue
        assert body["flips_on_replay"] is True, body
        changed = set(body["perturbation"])
        assert changed and not changed & IMMUTABLE and not changed & {"sex", "age"}
        replay = client.post(
            f"/api/v1/decisions/{decision['decision_id']}/replay",
            headers=headers,
            json={"overrides": {k: v["to"] for k, v in body["perturbation"].items()}},
        )
        assert replay.status_code == 200, replay.text
        assert replay.json()["label_changed"] is True
        assert body["verdict"] == ("fragile" if body["distance"] < 0.1 else "robust")
        with engine.begin() as conn:
            conn.execute(
                Explanation.__table__.delete().where(Explanation.__table__.c.method == "robustness")
            )
        again = client.get(path, headers=headers).json()
        assert again["cached"] is False
        assert {k: v for k, v in again.items() if k not in VOLATILE} == {
            k: v for k, v in body.items() if k not in VOLATILE
        }
    assert (
        client.get(
            f"/api/v1/decisions/{decisions[0]['decision_id']}/robustness",
            headers=auth(Role.predictor),
        ).status_code
        == 403
    )
