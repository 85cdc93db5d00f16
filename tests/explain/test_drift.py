from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from governance.audit import ledger
from governance.auth.models import Role
from governance.db import session_factory, transaction
from lineage.synthetic import applicant_features, generate_loans
from serving.decision_log import CHAIN, columns_of
from serving.models import DecisionRecord
from tests.conftest import Served


def _stream(engine: sa.Engine, served: Served, endpoint: str, n: int, seed: int, shift: float):
    """n logged decisions whose inputs come from the training generator, income scaled."""
    rows = generate_loans(n, seed=seed).to_dict(orient="records")
    contents = []
    for row in rows:
        features = applicant_features(row)
        features["income"] = round(features["income"] * shift, 2)
        contents.append(
            {
                "decision_id": str(uuid.uuid4()),
                "kind": "decision",
                "created_at": datetime.now(UTC).isoformat(),
                "endpoint": endpoint,
                "key_id": "test",
                "model": {"name": "credit", "version": served.versions[0], "sha256": "0" * 64},
                "route": "live",
                "subject_id": None,
                "features": features,
                "context": {},
                "label": 1,
                "score": 0.6,
            }
        )
    with transaction(session_factory(engine)) as session:
        ledger.append(
            session,
            chain=CHAIN,
            table=DecisionRecord.__table__,
            contents=contents,
            columns_of=columns_of,
        )


def _endpoint(client: TestClient, served: Served, name: str) -> None:
    response = client.put(
        f"/api/v1/endpoints/{name}",
        headers=served.headers,
        json={"routes": [{"model": "credit", "version": served.versions[0]}]},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_a_shifted_stream_is_caught_on_the_shifted_feature_only_and_a_calm_one_is_not(
    client: TestClient, auth, served: Served, engine: sa.Engine, seed: int
) -> None:
    _endpoint(client, served, "shifted")
    _endpoint(client, served, "calm")
    _stream(engine, served, "shifted", 800, seed, shift=1.6)
    _stream(engine, served, "calm", 800, seed + 1, shift=1.0)
    headers = auth(Role.data_scientist)
    shifted = client.get("/api/v1/drift", headers=headers, params={"endpoint": "shifted"})
    calm = client.get("/api/v1/drift", headers=headers, params={"endpoint": "calm"})
    assert shifted.status_code == calm.status_code == 200, shifted.text
    shifted, calm = shifted.json(), calm.json()
    [report] = shifted["versions"]
    assert report["n"] == 800 and shifted["drifted"] is True
    assert report["drifted_features"] == ["income"], report["features"]
    income = report["features"]["income"]
    assert income["p_value_holm"] < 0.05 and income["psi"] >= 0.1
    assert income["test"].startswith("Kolmogorov-Smirnov")
    assert report["features"]["purpose"]["test"].startswith("Pearson chi-squared")
    assert calm["drifted"] is False, calm["versions"][0]["features"]
    assert calm["versions"][0]["drifted_features"] == []


def test_drift_queries_are_checked_and_restricted(client: TestClient, auth, served: Served) -> None:
    headers = auth(Role.compliance)
    bad = client.get(
        "/api/v1/drift",
        headers=headers,
        params={
            "endpoint": "credit",
            "since": "2026-12-01T00:00:00Z",
            "until": "2026-11-01T00:00:00Z",
        },
    )
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "since"
    assert (
        client.get("/api/v1/drift", headers=headers, params={"endpoint": "nope"}).status_code == 404
    )
    empty = client.get("/api/v1/drift", headers=headers, params={"endpoint": "credit"})
    assert empty.status_code == 200 and empty.json()["n"] == 0
    for role in (Role.appeals, Role.predictor):
        assert (
            client.get(
                "/api/v1/drift", headers=auth(role), params={"endpoint": "credit"}
            ).status_code
            == 403
        )
