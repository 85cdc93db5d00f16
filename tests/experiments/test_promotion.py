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
    assert response.status_code == 202, response.text
    queued = schemas.PromotionPublic.model_validate(response.json())
    assert queued.status == "gathering" and queued.evidence is None
    assert response.headers["Location"] == f"/api/v1/promotions/{queued.promotion_id}"
    # The job ran (the test client runs it before returning): the evidence is in.
    gathered = client.get(response.headers["Location"], headers=headers)
    assert gathered.status_code == 200, gathered.text
    promotion = schemas.PromotionPublic.model_validate(gathered.json())
    assert promotion.status == "requested", promotion.error
    assert promotion.progress is not None and promotion.progress.stage == "gathered"
    return dict(gathered.json())  # as sent: the evidence exactly as it was hashed


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
    assert [h["event"] for h in asked["history"]] == ["promotion.requested", "promotion.evidence"]
    assert asked["progress"] == {"stage": "gathered", "done": 2, "total": 2}

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

    # The console: the validator finds it waiting, reads its evidence, and is refused the same.
    from tests.console.support import form_value, sign_in

    screen = TestClient(client.app)
    sign_in(screen, validator["Authorization"].split(" ", 1)[1])
    listed = screen.get("/console/promotions", params={"status": "requested"})
    assert listed.status_code == 200 and f"/console/promotions/{promotion_id}" in listed.text
    shown = screen.get(f"/console/promotions/{promotion_id}")
    assert shown.status_code == 200 and 'id="evidence"' in shown.text
    assert asked["evidence_sha256"] in shown.text and "rebuild not identical" in shown.text
    assert "of 2 recent decisions fragile" in shown.text
    decide = {"csrf_token": form_value(shown.text, "csrf_token"), "action": "approve"}
    short = screen.post(
        f"/console/promotions/{promotion_id}/decision",
        data={**decide, "rationale": "ok"},
        follow_redirects=False,
    )
    assert short.status_code == 422 and "at least 10 characters" in short.text
    gaps = screen.post(
        f"/console/promotions/{promotion_id}/decision",
        data={**decide, "rationale": "looks fine to me on screen"},
        follow_redirects=False,
    )
    assert gaps.status_code == 409 and "rebuild_not_identical" in gaps.text
    watcher = TestClient(client.app)
    sign_in(watcher, scientist["Authorization"].split(" ", 1)[1])
    page = watcher.get(f"/console/promotions/{promotion_id}")
    assert page.status_code == 200 and 'id="decide-form"' not in page.text
    forbidden = watcher.post(
        f"/console/promotions/{promotion_id}/decision",
        data={
            "csrf_token": form_value(page.text, "csrf_token"),
            "action": "approve",
            "rationale": "I asked for it, so I approve it",
        },
        follow_redirects=False,
    )
    assert forbidden.status_code == 403
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

    shown = screen.get(f"/console/promotions/{promotion_id}")
    approved_on_screen = screen.post(
        f"/console/promotions/{promotion_id}/decision",
        data={
            "csrf_token": form_value(shown.text, "csrf_token"),
            "action": "approve",
            "rationale": "independent review: gate, fairness and drift are acceptable",
        },
        follow_redirects=False,
    )
    assert approved_on_screen.status_code == 303, approved_on_screen.text
    approved = client.get(f"/api/v1/promotions/{promotion_id}", headers=validator)
    body = approved.json()
    after = screen.get(f"/console/promotions/{promotion_id}")
    assert 'id="promotion-status">applied<' in after.text and 'id="decide-form"' not in after.text
    assert body["status"] == "applied" and body["routing"]["before"] is not None
    assert [s["event"] for s in body["history"]] == [
        "promotion.requested",
        "promotion.evidence",
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


def _log(engine: Any, route: str, version: int, n: int, slow_share: float, seed: int) -> None:
    """n decisions on a route, appended to the log as the server would: latencies of 5 ms on
    average, and ``slow_share`` of them at 100 ms."""
    from datetime import UTC, datetime

    import numpy as np

    from core.audit import ledger
    from core.db import session_factory, transaction
    from serving.decision_log import CHAIN, columns_of
    from serving.models import DecisionRecord

    rng = np.random.default_rng(seed)
    latency = rng.exponential(5.0, n) + (rng.random(n) < slow_share) * 100.0
    contents = [
        {
            "decision_id": f"{route}-{seed}-{i}",
            "kind": "decision",
            "created_at": datetime.now(UTC).isoformat(),
            "endpoint": "credit",
            "key_id": "test",
            "model": {"name": "credit", "version": version, "sha256": "0" * 64},
            "route": route,
            "subject_id": f"{route}-{seed}-{i}",
            "features": {},
            "context": {"sex": "FM"[i % 2]},
            "label": int(rng.random() < 0.6),
            "score": 0.5,
            "latency_ms": round(float(latency[i]), 3),
        }
        for i in range(n)
    ]
    with transaction(session_factory(engine)) as session:
        ledger.append(
            session,
            chain=CHAIN,
            table=DecisionRecord.__table__,
            contents=contents,
            columns_of=columns_of,
        )


def _approved_rollout(client: TestClient, auth: Any, version: int, steps: list[float]) -> str:
    asked = client.post(
        f"/api/v1/models/credit/versions/{version}/promotion",
        headers=auth(Role.data_scientist),
        json={
            "endpoint": "credit",
            "rationale": "roll v2 out in steps while its latency holds",
            "robustness_decisions": 1,
            "rollout": {
                "steps": steps,
                "min_decisions_per_step": 400,
                "guardrails": {"max_p99_latency_ms": 40},
            },
        },
    )
    assert asked.status_code == 202, asked.text
    promotion_id = asked.json()["promotion_id"]
    waived = client.post(
        f"/api/v1/promotions/{promotion_id}/waive",
        headers=auth(Role.admin),
        json={"what": "evidence", "reason": "the test's versions are never rebuilt"},
    )
    assert waived.status_code == 200, waived.text
    approved = client.post(
        f"/api/v1/promotions/{promotion_id}/approve",
        headers=auth(Role.validator),
        json={"rationale": "approved to roll out in steps, watched by its guardrails"},
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "rolling_out"
    return str(promotion_id)


def _weights(client: TestClient, auth: Any) -> list[tuple[int, float]]:
    config = client.get("/api/v1/endpoints/credit", headers=auth(Role.admin)).json()["config"]
    return [(r["version"], round(r["weight"], 6)) for r in config["routes"]]


def test_a_roll_out_steps_up_while_its_guardrails_hold_and_rolls_back_when_one_breaks(
    client: TestClient, served: Served, auth: Any, engine: Any
) -> None:
    _traffic(client, auth, 2)
    v1, v2 = served.versions
    before = _weights(client, auth)
    promotion_id = _approved_rollout(client, auth, v2, [0.1, 0.5, 1.0])
    assert _weights(client, auth) == [(v1, 0.9), (v2, 0.1)]

    def tick() -> dict[str, Any]:
        response = client.post(
            f"/api/v1/promotions/{promotion_id}/rollout", headers=auth(Role.validator)
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    waiting = tick()
    assert waiting["action"] == "waiting" and "0 of the 400" in waiting["reason"]
    _log(engine, "live", v1, 400, 0.0, seed=1)
    _log(engine, "challenger-1", v2, 400, 0.0, seed=2)
    stepped = tick()
    assert stepped["action"] == "stepped_up", stepped["reason"]
    assert _weights(client, auth) == [(v1, 0.5), (v2, 0.5)]
    step = stepped["promotion"]["rollout"]["history"][-1]
    assert step["guardrails"]["p99_latency_ms"]["state"] == "holds"
    assert step["decisions"] == 400 and step["weight"] == 0.5

    # The next step counts only its own decisions: the slow ones now.
    _log(engine, "challenger-1", v2, 400, 0.1, seed=3)
    broken = tick()
    assert broken["action"] == "rolled_back" and "p99_latency_ms" in broken["reason"]
    assert _weights(client, auth) == before
    body = broken["promotion"]
    assert body["status"] == "rolled_back"
    [last] = [h for h in body["rollout"]["history"] if h["action"] == "rolled_back"]
    p99 = last["guardrails"]["p99_latency_ms"]
    assert p99["state"] == "breached" and p99["ci95"][0] > 40
    events = [h["event"] for h in body["history"]]
    assert events[-3:] == [
        "promotion.rollout_started",
        "promotion.rollout_step",
        "promotion.rollout_rolled_back",
    ]
    closed = client.post(f"/api/v1/promotions/{promotion_id}/rollout", headers=auth(Role.validator))
    assert closed.status_code == 409


def test_a_roll_out_that_holds_to_the_last_step_makes_the_version_live(
    client: TestClient, served: Served, auth: Any, engine: Any
) -> None:
    _traffic(client, auth, 2)
    v2 = served.versions[1]
    promotion_id = _approved_rollout(client, auth, v2, [0.5, 1.0])
    _log(engine, "challenger-1", v2, 400, 0.0, seed=4)
    done = client.post(f"/api/v1/promotions/{promotion_id}/rollout", headers=auth(Role.validator))
    assert done.status_code == 200 and done.json()["action"] == "completed", done.text
    assert _weights(client, auth) == [(v2, 1.0)]
    assert done.json()["promotion"]["status"] == "applied"
    version = client.get(f"/api/v1/models/credit/versions/{v2}", headers=auth(Role.admin))
    assert version.json()["stage"] == "production"


def test_the_evidence_is_a_job_a_validator_waits_for_and_its_failure_is_recorded(
    client: TestClient, served: Served, auth: Any, engine: Any, settings: Any
) -> None:
    """While the evidence is gathered nobody can decide; when gathering fails (the candidate's
    artifact no longer matches the registry) the promotion says so and stays closed."""
    import os
    from datetime import UTC, datetime
    from pathlib import Path

    from core.auth.schemas import Principal
    from core.db import session_factory, transaction
    from governance.promotion import service
    from lineage.artifacts import ArtifactStore

    _traffic(client, auth, 3)
    scientist = Principal(key_id="ds-test", name="a scientist", role=Role.data_scientist)
    with transaction(session_factory(engine)) as session:
        queued = service.request(
            session,
            scientist,
            name="credit",
            number=served.versions[1],
            endpoint="credit",
            rationale="asked, and the job has not run yet",
            experiment_id=None,
            robustness_decisions=3,
            now=datetime.now(UTC),
        )
        promotion_id = queued.promotion_id
    waiting = client.post(
        f"/api/v1/promotions/{promotion_id}/approve",
        headers=auth(Role.validator),
        json={"rationale": "approving before the evidence is in"},
    )
    assert waiting.status_code == 409, waiting.text
    assert "still being gathered (queued: 0 of 3" in waiting.text
    listed = client.get(
        "/api/v1/promotions", params={"status": "gathering"}, headers=auth(Role.validator)
    )
    assert [p["promotion_id"] for p in listed.json()["data"]] == [promotion_id]

    sha = client.get(
        f"/api/v1/models/credit/versions/{served.versions[1]}", headers=auth(Role.admin)
    ).json()["artifact_sha256"]
    path = Path(ArtifactStore(settings.artifacts).path_for(sha))
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes() + b"tampered")
    app = client.app
    service.gather(
        app.state.sessions,
        app.state.settings,
        app.state.explainers,
        scientist,
        promotion_id,
        lambda: datetime.now(UTC),
    )
    failed = client.get(f"/api/v1/promotions/{promotion_id}", headers=auth(Role.validator))
    body = schemas.PromotionPublic.model_validate(failed.json())
    assert body.status == "failed" and body.evidence is None and body.evidence_sha256 is None
    assert body.error is not None and "ArtifactIntegrityError" in body.error, body.error
    assert [h.event for h in body.history] == ["promotion.requested", "promotion.failed"]
    closed = client.post(
        f"/api/v1/promotions/{promotion_id}/approve",
        headers=auth(Role.validator),
        json={"rationale": "approving a promotion that failed"},
    )
    assert closed.status_code == 409 and "failed" in closed.text
