"""Retention: payloads past the period go, their hashes stay, the chain still verifies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from core.auth.models import Role
from core.config import Settings
from core.db import session_factory, utcnow
from explain.models import Explanation
from governance.cli import app as cli
from governance.compliance import retention
from serving.models import DecisionRecord
from tests.conftest import Served
from tests.support.factories import applicant


def test_purged_records_lose_their_payload_and_still_verify(
    client: TestClient, auth: Any, served: Served, engine: sa.Engine, settings: Settings
) -> None:
    predictor, compliance = auth(Role.predictor), auth(Role.compliance)
    made = [
        client.post(
            "/api/v1/endpoints/credit/predict",
            headers=predictor,
            json={"subject_id": f"person-{i}", "features": applicant(income=40_000.0 + i)},
        ).json()
        for i in range(5)
    ]
    first = made[0]["decision_id"]
    assert client.get(f"/api/v1/decisions/{first}/reasons", headers=compliance).status_code == 200
    sessions = session_factory(engine)
    later = utcnow() + timedelta(days=settings.retention_days + 1)

    rehearsal = retention.apply(sessions, settings.retention_days, now=later, dry_run=True)
    assert rehearsal["records"] == 5 and rehearsal["purged"] == 0
    assert client.get(f"/api/v1/decisions/{first}", headers=compliance).status_code == 200
    assert retention.apply(sessions, settings.retention_days)["records"] == 0, "nothing is old yet"

    done = retention.apply(sessions, settings.retention_days, now=later)
    assert done["purged"] == 5
    table = DecisionRecord.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.payload, table.c.features, table.c.subject_id, table.c.record_hash)
        ).all()
        explanations = conn.execute(
            sa.select(sa.func.count()).select_from(Explanation.__table__)
        ).scalar()
    assert len(rows) == 5 and all(r.payload is None and r.features is None for r in rows)
    assert all(r.subject_id is None and len(r.record_hash) == 64 for r in rows)
    assert explanations == 0
    gone = client.get(f"/api/v1/decisions/{first}/reasons", headers=compliance)
    assert gone.status_code == 409 and gone.json()["error"]["code"] == "purged"
    verify = client.get("/api/v1/audit/verify", headers=compliance).json()
    assert verify["ok"] is True, verify
    listed = client.get("/api/v1/decisions", headers=compliance).json()["data"]
    assert [r["purged"] for r in listed] == [True] * 5
    assert all(r["features"] is None and r["subject_id"] is None for r in listed)
    trail = client.get(
        "/api/v1/audit/access-log", headers=compliance, params={"action": "retention.purge"}
    ).json()["data"]
    assert len(trail) == 1 and trail[0]["rows"] == 5
    assert trail[0]["params"]["retention_days"] == settings.retention_days


def test_the_cli_dry_run_says_what_would_go(env_settings: Settings) -> None:
    result = CliRunner().invoke(cli, ["retention", "apply", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would purge 0 decision payload(s)" in result.stdout
    assert "retention 762 days" in result.stdout
