from __future__ import annotations

import sqlalchemy as sa
from fastapi.testclient import TestClient

from core.auth.models import Role
from core.config import Settings
from governance.demo import run_demo
from serving.models import DecisionRecord


def test_demo_sets_up_a_working_system_once(
    settings: Settings, engine: sa.Engine, client: TestClient, auth
) -> None:
    assert run_demo(settings, decisions=60) is True
    assert run_demo(settings, decisions=60) is False, "a second run changes nothing"
    table = DecisionRecord.__table__
    with engine.connect() as conn:
        kinds = conn.execute(sa.select(table.c.kind, sa.func.count()).group_by(table.c.kind)).all()
    assert dict(kinds) == {"decision": 60}

    compliance = auth(Role.compliance)
    endpoint = client.get("/api/v1/endpoints/credit", headers=compliance).json()
    assert endpoint["config"]["routes"][0]["model"] == "credit"
    model = client.get("/api/v1/models/credit", headers=compliance).json()
    assert model["versions"][0]["stage"] == "production"
    assert client.get("/api/v1/audit/verify", headers=compliance).json()["ok"] is True
    report = client.get(
        "/api/v1/fairness", headers=compliance, params={"endpoint": "credit", "attribute": "sex"}
    ).json()
    assert report["n"] == 60 and report["with_outcomes"] == 40, report

    answer = client.post(
        "/api/v1/endpoints/credit/predict",
        headers=auth(Role.predictor),
        json={
            "features": {
                "income": 48000,
                "debt_to_income": 0.35,
                "credit_history_months": 60,
                "late_payments": 2,
                "employment_years": 3,
                "loan_amount": 15000,
                "purpose": "car",
                "housing": "rent",
            }
        },
    )
    assert answer.status_code == 200, answer.text
