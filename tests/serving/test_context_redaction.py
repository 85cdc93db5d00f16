"""A decision's context is shown to roles other than compliance and admin through an allowlist:
only the keys a model version's spec or the endpoint declares public, never a protected
attribute, and nothing a caller happened to send (an ``ssn``)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from core.auth.models import Role
from core.config import Settings
from lineage.capture import TrainingCapture
from lineage.spec import parse_spec, spec_hash
from tests.conftest import Served
from tests.support.factories import DataRepo, applicant, cached_model, spec_for, train_via_api

CONTEXT: dict[str, Any] = {
    "sex": "F",
    "age": 29,
    "ssn": "123-45-6789",
    "branch": "north",
    "channel": "web",
}
READERS = (Role.appeals, Role.data_scientist)


def _decide(client: TestClient, auth: Any, endpoint: str, context: dict[str, Any]) -> str:
    response = client.post(
        f"/api/v1/endpoints/{endpoint}/predict",
        headers=auth(Role.predictor),
        json={"features": applicant(), "context": context},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["decision_id"])


def _read(client: TestClient, headers: dict[str, str], decision_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/decisions/{decision_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_undeclared_context_key_is_hidden_from_every_role_but_compliance(
    client: TestClient, auth: Any, served: Served
) -> None:
    """A version trained before `public_context` existed: nothing in its context is public."""
    decision_id = _decide(client, auth, "credit", CONTEXT)
    for role in READERS:
        body = _read(client, auth(role), decision_id)
        assert body["context"] == {}, role
        assert body["redacted"] == sorted(CONTEXT), role
        dossier = client.get(f"/api/v1/decisions/{decision_id}/dossier", headers=auth(role))
        assert dossier.status_code == 200, dossier.text
        assert dossier.json()["decision"]["context"] == {}
        assert dossier.json()["redacted"] == sorted(CONTEXT)
        page = client.get(
            f"/api/v1/decisions/{decision_id}/dossier",
            headers=auth(role),
            params={"format": "html"},
        )
        assert CONTEXT["ssn"] not in page.text and "ssn" in page.text  # named, never shown
    for role in (Role.compliance, Role.admin):
        body = _read(client, auth(role), decision_id)
        assert body["context"] == CONTEXT and body["redacted"] == []


@pytest.fixture
def declared(
    settings: Settings, data_repo: DataRepo, client: TestClient, auth: Any
) -> dict[str, Any]:
    """Model `branchy` whose spec declares `branch` public, live on endpoint `branchy`, whose
    configuration declares `channel` public, and `sex` too (a protected attribute)."""
    version = cached_model(settings, data_repo, model="branchy", public_context=["branch"])
    admin = auth(Role.admin)
    promoted = client.post(
        f"/api/v1/models/branchy/versions/{version}/stage",
        headers=admin,
        json={"stage": "production", "reason": "tests"},
    )
    assert promoted.status_code == 201, promoted.text
    config = {
        "routes": [{"model": "branchy", "version": version}],
        "public_context": ["channel", "sex"],
    }
    routed = client.put("/api/v1/endpoints/branchy", headers=admin, json=config)
    assert routed.status_code == 200, routed.text
    assert routed.json()["config"]["public_context"] == ["channel", "sex"]
    return {"version": version, "config": config, "admin": admin}


def test_keys_declared_public_by_spec_or_endpoint_show_and_protected_ones_never_do(
    client: TestClient, auth: Any, declared: dict[str, Any]
) -> None:
    decision_id = _decide(client, auth, "branchy", CONTEXT)
    for role in READERS:
        body = _read(client, auth(role), decision_id)
        assert body["context"] == {"branch": "north", "channel": "web"}, role
        assert body["redacted"] == ["age", "sex", "ssn"], role
        dossier = client.get(f"/api/v1/decisions/{decision_id}/dossier", headers=auth(role))
        assert dossier.json()["decision"]["context"] == {"branch": "north", "channel": "web"}
        assert dossier.json()["redacted"] == ["age", "sex", "ssn"]
    assert _read(client, auth(Role.compliance), decision_id)["context"] == CONTEXT

    # The endpoint's current configuration counts: once it no longer declares `channel`, the
    # decisions it made before hide it too.
    config = {**declared["config"], "public_context": []}
    changed = client.put("/api/v1/endpoints/branchy", headers=declared["admin"], json=config)
    assert changed.status_code == 200, changed.text
    for role in READERS:
        body = _read(client, auth(role), decision_id)
        assert body["context"] == {"branch": "north"}, role
        assert body["redacted"] == ["age", "channel", "sex", "ssn"], role
        dossier = client.get(f"/api/v1/decisions/{decision_id}/dossier", headers=auth(role))
        assert dossier.json()["decision"]["context"] == {"branch": "north"}


def test_a_spec_declares_public_context_and_can_never_make_a_protected_attribute_public(
    client: TestClient, auth: Any, data_repo: DataRepo
) -> None:
    headers = auth(Role.data_scientist)
    refused = client.post(
        "/api/v1/runs", headers=headers, json=spec_for(data_repo, public_context=["branch", "sex"])
    )
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert [d["field"] for d in error["details"]] == ["public_context"]
    assert "protected" in error["details"][0]["message"] and "sex" in error["details"][0]["message"]
    duplicated = client.post(
        "/api/v1/runs", headers=headers, json=spec_for(data_repo, public_context=["a", "a"])
    )
    assert duplicated.status_code == 422
    assert [d["field"] for d in duplicated.json()["error"]["details"]] == ["public_context"]
    endpoint = client.put(
        "/api/v1/endpoints/x",
        headers=auth(Role.admin),
        json={"routes": [{"model": "m", "version": 1}], "public_context": [""]},
    )
    assert endpoint.status_code == 422
    assert endpoint.json()["error"]["details"][0]["field"].startswith("public_context")

    run = train_via_api(client, headers, spec_for(data_repo, public_context=["branch"]))
    lineage = client.get(
        f"/api/v1/models/credit/versions/{run['model_version']}/lineage", headers=headers
    ).json()["lineage"]
    assert lineage["spec"]["public_context"] == ["branch"]


def test_a_recorded_spec_without_public_context_resolves_and_hashes_as_recorded(
    data_repo: DataRepo,
) -> None:
    """Rebuilds re-run recorded specs: one recorded before the field existed (or without any
    public key) must resolve to the same document and hash, or the rebuild reports a spec
    difference that is not there."""
    recorded = parse_spec(spec_for(data_repo)).resolved()
    assert "public_context" not in recorded
    again = parse_spec(recorded)
    assert again.public_context == []
    assert again.resolved() == recorded and spec_hash(again.resolved()) == spec_hash(recorded)
    declared = parse_spec({**recorded, "public_context": ["branch"]}).resolved()
    assert declared["public_context"] == ["branch"]
    assert parse_spec(declared).resolved() == declared


def _pipeline(frame: Any) -> Pipeline:
    columns = ["income", "debt_to_income"]
    pipeline = Pipeline(
        [
            ("pre", ColumnTransformer([("num", "passthrough", columns)])),
            ("model", LogisticRegression(max_iter=200)),
        ]
    )
    return pipeline.fit(frame[columns], frame["repaid"])


def test_an_external_registration_carries_its_public_context_into_the_stored_spec(
    client: TestClient, auth: Any, data_repo: DataRepo
) -> None:
    capture = TrainingCapture(
        dataset={
            "name": "loans",
            "repo": str(data_repo.repo),
            "path": data_repo.path,
            "rev": data_repo.commits[0],
        },
        seeds={"estimator": 1},
    )
    with capture:
        pipeline = _pipeline(capture.read_data())
    body = capture.payload(
        pipeline,
        target={"column": "repaid", "positive_class": 1},
        features=[
            {"name": "income", "type": "numeric"},
            {"name": "debt_to_income", "type": "numeric"},
        ],
        protected=[{"name": "sex"}],
    )
    headers = auth(Role.data_scientist)
    refused = client.post(
        "/api/v1/models/ext/versions", headers=headers, json={**body, "public_context": ["sex"]}
    )
    assert refused.status_code == 422, refused.text
    assert [d["field"] for d in refused.json()["error"]["details"]] == ["public_context"]
    created = client.post(
        "/api/v1/models/ext/versions", headers=headers, json={**body, "public_context": ["branch"]}
    )
    assert created.status_code == 201, created.text
    lineage = client.get("/api/v1/models/ext/versions/1/lineage", headers=headers).json()
    assert lineage["lineage"]["spec"]["public_context"] == ["branch"]
