from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from core.audit.models import AccessRecord
from core.auth.models import Role
from explain.models import Explanation
from governance.cli import app as cli
from tests.conftest import Served
from tests.support.factories import applicant

EXPLANATIONS = Explanation.__table__
ACCESS = AccessRecord.__table__


def test_govern_explain_explains_a_window_once_and_the_api_serves_the_result(
    env_settings, client: TestClient, auth, served: Served, engine: sa.Engine
) -> None:
    predictor = auth(Role.predictor)
    ids = []
    for i in range(5):
        response = client.post(
            "/api/v1/endpoints/credit/predict",
            headers=predictor,
            json={"features": applicant(income=30_000.0 + 9_000 * i)},
        )
        assert response.status_code == 200, response.text
        ids.append(response.json()["decision_id"])
    since = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")

    first = CliRunner().invoke(
        cli, ["explain", "--endpoint", "credit", "--method", "shap", "--since", since]
    )
    assert first.exit_code == 0, first.output
    assert "5 decisions: 5 explained, 0 already stored, 0 failed" in first.stdout
    with engine.connect() as conn:
        stored = conn.execute(sa.select(EXPLANATIONS.c.decision_id, EXPLANATIONS.c.method)).all()
    assert sorted(stored) == sorted((i, "shap") for i in ids)

    again = CliRunner().invoke(cli, ["explain", "--endpoint", "credit", "--method", "shap"])
    assert again.exit_code == 0, again.output
    assert "5 decisions: 0 explained, 5 already stored" in again.stdout

    served_by_api = client.get(
        f"/api/v1/decisions/{ids[2]}/explanations/shap", headers=auth(Role.appeals)
    )
    assert served_by_api.status_code == 200 and served_by_api.json()["cached"] is True

    future = CliRunner().invoke(cli, ["explain", "--endpoint", "credit", "--since", "2999-01-01"])
    assert future.exit_code == 0 and "0 decisions" in future.stdout
    with engine.connect() as conn:
        bulk = conn.execute(
            sa.select(ACCESS.c.action, ACCESS.c.rows).where(ACCESS.c.key_id == "cli")
        ).all()
    assert [tuple(r) for r in bulk] == [("explanation.shap.bulk", 5)] * 2 + [
        ("explanation.shap.bulk", 0)
    ]
