"""Promotion with effective challenge (issue 22), on both databases: the evidence is gathered and
its hash is in the governance chain; a promotion with a gap in its evidence is refused until an
admin waives it in writing; the key that trained a version cannot approve it; an approval puts
the version in production and the endpoint's live route on it at once; a rollback returns the
endpoint to its previous configuration."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi.testclient import TestClient

from core.audit.chain import canonical_json
from core.auth.models import Role
from governance.promotion import schemas
from tests.conftest import Served
from tests.support.factories import applicant, spec_for, train_via_api

PREDICT = "/api/v1/endpoints/credit/predict"


def _traffic(client: TestClient, auth: Any, n: int) -> None:
    for i in range(n):
        response = client.post(
            PREDICT,
            headers=auth(Role.predictor),
            json={
                "features": applicant(income=30000.0 + 1000 * i),
                "context": {"sex": "FM"[i % 2]},
            },
        )
        assert response.status_code == 200, response.text


def _ask(client: TestClient, headers: dict[str, str], version: int) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/models/credit/versions/{version}/promotion",
        headers=headers,
        json={
            "endpoint": "credit",
            "rationale": "v2 matches v1 on every gate metric and drops no group",
            "robustness_decisions": 2,
        },
    )
    assert response.status_code == 201, response.text
    schemas.PromotionPublic.model_validate(response.json())
    return dict(response.json())  # as sent: the evidence exactly as it was hashed


def test_a_promotion_needs_evidence_or_a_waiver_and_a_second_pair_of_eyes(
    client: TestClient, served: Served, auth: Any
) -> None:
    _traffic(client, auth, 4)
    scientist, validator, admin = (
        auth(Role.data_scientist),
        auth(Role.validator),
        auth(Role.admin),
    )
    asked = _ask(client, scientist, served.versions[1])
    promotion_id = asked["promotion_id"]
    evidence = asked["evidence"]
    assert asked["evidence_sha256"] == hashlib.sha256(canonical_json(evidence).encode()).hexdigest()
    assert evidence["version"]["version"] == served.versions[1]
    assert evidence["robustness"]["sampled"] == 2
    assert evidence["card"]["version"] == served.versions[1]
    assert "rebuild_not_identical" in asked["evidence_gaps"], "never rebuilt"
    assert asked["history"][0]["event"] == "promotion.requested"

    again = client.post(
        f"/api/v1/models/credit/versions/{served.versions[1]}/promotion",
        headers=scientist,
        json={"endpoint": "credit", "rationale": "the same request twice"},
    )
    assert again.status_code == 409 and "open promotion" in again.text

    refused = client.post(
        f"/api/v1/promotions/{promotion_id}/approve",
        headers=validator,
        json={"rationale": "looks fine to me"},
    )
    assert refused.status_code == 409 and "rebuild_not_identical" in refused.text
    not_admin = client.post(
        f"/api/v1/promotions/{promotion_id}/waive",
        headers=scientist,
        json={"what": "evidence", "reason": "we are in a hurry"},
    )
    assert not_admin.status_code == 403
    approval_first = client.post(
        f"/api/v1/promotions/{promotion_id}/waive",
        headers=admin,
        json={"what": "approval", "reason": "the evidence is not there yet"},
    )
    assert approval_first.status_code == 409 and "waive the evidence first" in approval_first.text
    waived = client.post(
        f"/api/v1/promotions/{promotion_id}/waive",
        headers=admin,
        json={"what": "evidence", "reason": "the rebuild runs tonight; the gate and fairness hold"},
    )
    assert waived.status_code == 200, waived.text
    assert waived.json()["waivers"][0]["what"] == "evidence"

    approved = client.post(
        f"/api/v1/promotions/{promotion_id}/approve",
        headers=validator,
        json={"rationale": "independent review: gate, fairness and drift are acceptable"},
    )
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "applied" and body["routing"]["before"] is not None
    assert [s["event"] for s in body["history"]] == [
        "promotion.requested",
        "promotion.waived",
        "promotion.approved",
        "promotion.applied",
    ]
    endpoint = client.get("/api/v1/endpoints/credit", headers=admin).json()
    assert [(r["model"], r["version"]) for r in endpoint["config"]["routes"]] == [
        ("credit", served.versions[1])
    ]
    stages = client.get(f"/api/v1/models/credit/versions/{served.versions[1]}", headers=admin)
    assert stages.json()["stage"] == "production"
    history = client.get("/api/v1/models/credit/stage-history", headers=admin).json()
    [change] = [h for h in history if h["to_stage"] == "production" and promotion_id in h["reason"]]
    assert asked["evidence_sha256"] in change["reason"], "the stage history names the evidence"

    rolled = client.post(
        "/api/v1/endpoints/credit/rollback",
        headers=scientist,
        json={"reason": "the approval rate fell on the first day"},
    )
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["promotion"] == promotion_id
    endpoint = client.get("/api/v1/endpoints/credit", headers=admin).json()
    assert [(r["model"], r["version"]) for r in endpoint["config"]["routes"]] == [
        ("credit", served.versions[0])
    ]
    closed = client.get(f"/api/v1/promotions/{promotion_id}", headers=validator).json()
    assert closed["status"] == "rolled_back"
    verified = client.get("/api/v1/audit/verify", headers=auth(Role.compliance)).json()
    assert verified["ok"] is True


def test_the_key_that_trained_a_version_cannot_approve_its_promotion(
    client: TestClient, served: Served, auth: Any, data_repo: Any
) -> None:
    _traffic(client, auth, 2)
    admin = auth(Role.admin)
    run = train_via_api(client, admin, spec_for(data_repo, seed=11))
    version = run["model_version"]
    asked = _ask(client, auth(Role.data_scientist), version)
    own = client.post(
        f"/api/v1/promotions/{asked['promotion_id']}/approve",
        headers=admin,
        json={"rationale": "I trained it and I like it"},
    )
    assert own.status_code == 403 and "trained this version" in own.text
    rejected = client.post(
        f"/api/v1/promotions/{asked['promotion_id']}/reject",
        headers=auth(Role.validator),
        json={"rationale": "no rebuild, and the robustness sample is too small"},
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    late = client.post(
        f"/api/v1/promotions/{asked['promotion_id']}/approve",
        headers=auth(Role.validator),
        json={"rationale": "changed my mind"},
    )
    assert late.status_code == 409 and "rejected" in late.text
