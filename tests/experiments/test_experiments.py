"""Experiments on logged traffic (issue 22), on both databases: declaring one routes its arms on
the endpoint; its report counts exactly the decisions an independent count of the log finds;
the split is checked for a sample ratio mismatch; a decision, once reached, stands; ending it
gives the endpoint back its routing; every change is in the governance chain, which verifies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from core.auth.models import Role
from governance.experiments import schemas
from serving.models import DecisionRecord
from tests.conftest import Served
from tests.support.factories import applicant, cached_model

PREDICT = "/api/v1/endpoints/credit/predict"


def _traffic(client: TestClient, auth: Any, n: int, start: int = 0) -> list[dict[str, Any]]:
    predictor = auth(Role.predictor)
    made = []
    for i in range(start, start + n):
        features = applicant(income=20000.0 + 1500.0 * (i % 40), debt_to_income=0.2 + (i % 7) / 20)
        body = {"subject_id": f"S-{i}", "features": features, "context": {"sex": "FM"[i % 2]}}
        response = client.post(PREDICT, headers=predictor, json=body)
        assert response.status_code == 200, response.text
        made.append(response.json())
    return made


def _declare(client: TestClient, auth: Any, versions: list[int], **changes: Any) -> dict[str, Any]:
    body = {
        "name": "v2 as a canary, v3 in the shadow",
        "endpoint": "credit",
        "champion": {"model": "credit", "version": versions[0]},
        "challengers": [
            {"model": "credit", "version": versions[1], "mode": "canary", "weight": 0.3},
            {"model": "credit", "version": versions[2], "mode": "shadow"},
        ],
        "metric": {"kind": "approval_rate", "mde": 0.1},
        "guardrails": {"attributes": ["sex"], "max_ood_rate": 0.5},
        "stopping": {"kind": "msprt", "baseline": 0.5},
        **changes,
    }
    response = client.post("/api/v1/experiments", headers=auth(Role.data_scientist), json=body)
    assert response.status_code == 201, response.text
    return dict(schemas.ExperimentReport.model_validate(response.json()).model_dump(mode="json"))


def _independent(engine: sa.Engine, started: int, versions: list[int]) -> dict[str, Any]:
    """The arms counted here from the log's rows, one by one."""
    table = DecisionRecord.__table__
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                table.c.decision_id,
                table.c.kind,
                table.c.route,
                table.c.version,
                table.c.label,
                table.c.parent_decision_id,
                table.c.context,
            ).where(table.c.seq > started, table.c.endpoint == "credit")
        ).all()
    live = {r.decision_id: r for r in rows if r.kind == "decision" and r.route == "live"}
    canary = [r for r in rows if r.kind == "decision" and r.route == "challenger-1"]
    shadow = [
        r
        for r in rows
        if r.kind == "shadow" and r.version == versions[2] and r.parent_decision_id in live
    ]
    return {
        "champion": (len(live), sum(r.label == "1" for r in live.values())),
        "challenger-1": (len(canary), sum(r.label == "1" for r in canary)),
        "challenger-2": (len(shadow), sum(r.label == "1" for r in shadow)),
        "disagreements": sum(r.label != live[r.parent_decision_id].label for r in shadow),
        "females_in_champion": sum(r.context["sex"] == "F" for r in live.values()),
    }


def test_an_experiment_routes_its_arms_and_its_report_matches_a_count_of_the_log(
    client: TestClient,
    served: Served,
    auth: Any,
    settings: Any,
    data_repo: Any,
    engine: sa.Engine,
) -> None:
    v3 = cached_model(settings, data_repo, seed=9)
    versions = [*served.versions, v3]
    before = client.get("/api/v1/endpoints/credit", headers=auth(Role.admin)).json()
    _traffic(client, auth, 20, start=1000)  # before the experiment: never counted
    declared = _declare(client, auth, versions)
    experiment_id = declared["experiment_id"]
    assert declared["decision"] == "continue" and declared["status"] == "running"
    assert [a["decisions"] for a in declared["arms"]] == [0, 0, 0]
    routing = client.get("/api/v1/endpoints/credit", headers=auth(Role.admin)).json()
    assert routing["config"]["sticky"] is True
    assert [r["name"] for r in routing["config"]["routes"]] == ["live", "challenger-1"]

    made = _traffic(client, auth, 160)
    again = _traffic(client, auth, 20)  # the same subjects again: each keeps its arm
    assert [d["route"] for d in again] == [d["route"] for d in made[:20]]
    outcomes = auth(Role.outcomes)
    for decision in made[:60]:
        recorded = client.post(
            f"/api/v1/decisions/{decision['decision_id']}/outcome",
            headers=outcomes,
            json={
                "outcome": 1 if decision["score"] > 0.3 else 0,
                "observed_at": datetime.now(UTC).isoformat(),
            },
        )
        assert recorded.status_code in (200, 201), recorded.text

    compliance = client.get(f"/api/v1/experiments/{experiment_id}", headers=auth(Role.compliance))
    assert compliance.status_code == 200, compliance.text
    report = schemas.ExperimentReport.model_validate(compliance.json())
    started = _started(engine, experiment_id)
    counted = _independent(engine, started, versions)
    arms = {a.arm: a for a in report.arms}
    for arm in ("champion", "challenger-1", "challenger-2"):
        n, approved = counted[arm]
        assert arms[arm].decisions == n, arm
        assert arms[arm].metric.value == (approved / n if n else None), arm
    assert arms["champion"].decisions + arms["challenger-1"].decisions == 180
    assert arms["challenger-2"].mode == "shadow"
    [shadow] = report.shadows
    assert shadow.paired_decisions == counted["challenger-2"][0]
    assert shadow.disagreements == counted["disagreements"]
    assert shadow.by_group is not None and shadow.examples is not None
    assert sum(g.disagreements for g in shadow.by_group) == shadow.disagreements
    per_group = sum(min(g.disagreements, 3) for g in shadow.by_group)
    assert len(shadow.examples) == per_group, "the latest, three per group at most"
    assert all(e.champion_label != e.shadow_label for e in shadow.examples)
    assert {e.group["sex"] for e in shadow.examples} <= {"F", "M"}
    [canary_test, shadow_test] = report.tests
    assert shadow_test.paired is True and canary_test.paired is False
    assert canary_test.alpha == 0.025, "two challengers: alpha / 2 each"
    srm = report.sample_ratio
    assert srm.expected_share == [0.7, 0.3] and srm.mismatch is False, srm
    sex = arms["champion"].guardrails["disparate_impact:sex"]
    assert sex.groups is not None
    assert {g.group: g.n for g in sex.groups}["F"] == counted["females_in_champion"]
    assert arms["champion"].guardrails["ood_rate"].state in ("holds", "not_assessable")

    # The console shows the same report.
    from tests.console.support import sign_in

    officer = TestClient(client.app)
    sign_in(officer, auth(Role.compliance)["Authorization"].split(" ", 1)[1])
    listed = officer.get("/console/experiments")
    assert listed.status_code == 200 and f"/console/experiments/{experiment_id}" in listed.text
    shown = officer.get(f"/console/experiments/{experiment_id}")
    assert shown.status_code == 200 and 'id="decision">continue<' in shown.text
    assert f"{arms['champion'].decisions}</td>" in shown.text and 'id="shadows"' in shown.text
    refused = TestClient(client.app)
    sign_in(refused, auth(Role.appeals)["Authorization"].split(" ", 1)[1])
    assert refused.get(f"/console/experiments/{experiment_id}").status_code == 403

    # A data scientist sees the guardrails' verdicts, not the rates of each protected group.
    scientist = client.get(
        f"/api/v1/experiments/{experiment_id}", headers=auth(Role.data_scientist)
    ).json()
    assert scientist["arms"][0]["guardrails"]["disparate_impact:sex"]["groups"] is None
    assert scientist["shadows"][0]["examples"] is None
    assert scientist["shadows"][0]["disagreements"] == shadow.disagreements

    changed = client.patch(
        f"/api/v1/experiments/{experiment_id}",
        headers=auth(Role.data_scientist),
        json={"guardrails": {"attributes": ["sex"], "max_ood_rate": 0.2}},
    )
    assert changed.status_code == 200 and changed.json()["version"] == 2
    fixed = client.patch(
        f"/api/v1/experiments/{experiment_id}",
        headers=auth(Role.data_scientist),
        json={"metric": {"kind": "auc", "mde": 0.01}},
    )
    assert fixed.status_code == 422 and "metric" in fixed.text
    twice = client.post(
        "/api/v1/experiments",
        headers=auth(Role.data_scientist),
        json={**_body(versions), "name": "another"},
    )
    assert twice.status_code == 409 and "running" in twice.text

    ended = client.post(
        f"/api/v1/experiments/{experiment_id}/end",
        headers=auth(Role.data_scientist),
        json={"reason": "enough traffic for the demo"},
    )
    assert ended.status_code == 200 and ended.json()["status"] == "ended"
    restored = client.get("/api/v1/endpoints/credit", headers=auth(Role.admin)).json()
    assert restored["config"]["routes"] == before["config"]["routes"]
    after = _traffic(client, auth, 5, start=2000)
    assert all(d["route"] == "live" for d in after)
    final = client.get(f"/api/v1/experiments/{experiment_id}", headers=auth(Role.compliance))
    assert [a["decisions"] for a in final.json()["arms"]] == [a.decisions for a in report.arms], (
        "an ended experiment counts nothing after its end"
    )

    history = client.get(
        f"/api/v1/experiments/{experiment_id}/history", headers=auth(Role.compliance)
    ).json()
    assert [v["version"] for v in history["versions"]] == [1, 2]
    assert [c["event"] for c in history["changes"]] == [
        "experiment.declared",
        "experiment.changed",
        "experiment.ended",
    ]
    verified = client.get("/api/v1/audit/verify", headers=auth(Role.compliance)).json()
    assert verified["ok"] is True
    assert "governance" in {c["chain"] for c in verified["chains"]}


def _body(versions: list[int]) -> dict[str, Any]:
    return {
        "name": "experiment",
        "endpoint": "credit",
        "champion": {"model": "credit", "version": versions[0]},
        "challengers": [{"model": "credit", "version": versions[1], "mode": "shadow"}],
        "metric": {"kind": "approval_rate", "mde": 0.1},
        "stopping": {"kind": "fixed_horizon", "baseline": 0.5, "max_per_arm": 30},
    }


def _started(engine: sa.Engine, experiment_id: str) -> int:
    from governance.experiments.models import Experiment

    table = Experiment.__table__
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(table.c.started_seq).where(table.c.experiment_id == experiment_id)
            ).scalar_one()
        )


def test_a_fixed_horizon_decides_at_its_horizon_and_the_decision_stands(
    client: TestClient, served: Served, auth: Any
) -> None:
    declared = client.post(
        "/api/v1/experiments", headers=auth(Role.data_scientist), json=_body(served.versions)
    )
    assert declared.status_code == 201, declared.text
    experiment_id = declared.json()["experiment_id"]
    _traffic(client, auth, 20)
    early = client.get(f"/api/v1/experiments/{experiment_id}", headers=auth(Role.compliance))
    assert early.json()["decision"] == "continue"
    assert "30 decisions" in early.json()["reason"]
    _traffic(client, auth, 20, start=20)
    at_horizon = client.get(
        f"/api/v1/experiments/{experiment_id}", headers=auth(Role.compliance)
    ).json()
    assert at_horizon["decision"] != "continue", at_horizon["tests"]
    assert at_horizon["decided_at"] is not None
    _traffic(client, auth, 30, start=40)
    later = client.get(f"/api/v1/experiments/{experiment_id}", headers=auth(Role.compliance))
    body = later.json()
    assert (
        body["decision"] == at_horizon["decision"]
        and body["decided_at"] == at_horizon["decided_at"]
    )
    assert body["reason"].startswith("decided ")
    assert body["arms"][0]["decisions"] == 70, "the figures go on; the decision stands"
    events = client.get(
        f"/api/v1/experiments/{experiment_id}/history", headers=auth(Role.compliance)
    ).json()["changes"]
    assert [e["event"] for e in events] == ["experiment.declared", "experiment.decided"]


def test_a_bad_experiment_is_refused_naming_the_field(
    client: TestClient, served: Served, auth: Any
) -> None:
    scientist = auth(Role.data_scientist)
    good = _body(served.versions)
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"challengers": [{"model": "credit", "version": 2, "mode": "shadow", "weight": 0.2}]},
            "no weight",
        ),
        (
            {"challengers": [{"model": "credit", "version": 2, "mode": "canary"}]},
            "needs its weight",
        ),
        (
            {
                "challengers": [
                    {"model": "credit", "version": 2, "mode": "canary", "weight": 0.6},
                    {"model": "credit", "version": 2, "mode": "shadow"},
                ]
            },
            "already an arm",
        ),
        ({"challengers": [{"model": "credit", "version": 99, "mode": "shadow"}]}, "challengers.0"),
        ({"metric": {"kind": "expected_loss", "mde": 5}}, "needs costs"),
        ({"metric": {"kind": "auc", "mde": 0.02}, "stopping": {"kind": "msprt"}}, "max_per_arm"),
        ({"guardrails": {"attributes": ["religion"]}}, "religion"),
        ({"endpoint": "nope"}, "nope"),
    ]
    for change, words in cases:
        response = client.post("/api/v1/experiments", headers=scientist, json={**good, **change})
        assert response.status_code in (404, 422), (change, response.text)
        assert words in response.text, (change, response.text)
    refused = client.post("/api/v1/experiments", headers=auth(Role.compliance), json=good)
    assert refused.status_code == 403
    missing = client.get("/api/v1/experiments/nope", headers=auth(Role.compliance))
    assert missing.status_code == 404


def _append(engine: sa.Engine, arm_records: list[dict[str, Any]]) -> None:
    from core.audit import ledger
    from core.db import session_factory, transaction
    from serving.decision_log import CHAIN, columns_of

    with transaction(session_factory(engine)) as session:
        ledger.append(
            session,
            chain=CHAIN,
            table=DecisionRecord.__table__,
            contents=arm_records,
            columns_of=columns_of,
        )


def test_the_guardrails_breach_only_what_the_data_shows_in_each_arm(
    client: TestClient, served: Served, auth: Any, engine: sa.Engine
) -> None:
    """1,000 decisions per arm appended to the log: the canary approves women at 0.3 and men
    at 0.7, flags 30% of its inputs as out of distribution, and has a slow tail; the champion
    does none of that. Each guardrail is breached in the canary alone, and the p99 is the order
    statistic the interval's ranks name."""
    import numpy as np

    from governance.experiments import stats as experiment_stats

    body = _body(served.versions)
    body["challengers"] = [
        {"model": "credit", "version": served.versions[1], "mode": "canary", "weight": 0.5}
    ]
    body["guardrails"] = {"attributes": ["sex"], "max_ood_rate": 0.2, "max_p99_latency_ms": 40}
    declared = client.post("/api/v1/experiments", headers=auth(Role.data_scientist), json=body)
    assert declared.status_code == 201, declared.text
    experiment_id = declared.json()["experiment_id"]
    rng = np.random.default_rng(5)
    latencies = {}
    records = []
    for arm, route, version in (
        ("champion", "live", served.versions[0]),
        ("challenger-1", "challenger-1", served.versions[1]),
    ):
        slow = arm != "champion"
        latency = rng.exponential(5.0, 1000) + (rng.random(1000) < 0.05) * (60.0 if slow else 0)
        latencies[arm] = np.round(latency, 3)
        for i in range(1000):
            sex = "FM"[i % 2]
            approve = rng.random() < ((0.3 if sex == "F" else 0.7) if slow else 0.5)
            records.append(
                {
                    "decision_id": f"{arm}-{i}",
                    "kind": "decision",
                    "created_at": datetime.now(UTC).isoformat(),
                    "endpoint": "credit",
                    "key_id": "test",
                    "model": {"name": "credit", "version": version, "sha256": "0" * 64},
                    "route": route,
                    "subject_id": f"{arm}-{i}",
                    "features": {},
                    "context": {"sex": sex},
                    "label": int(approve),
                    "score": 0.5,
                    "outlier_score": 1.0,
                    "is_outlier": bool(rng.random() < (0.3 if slow else 0.01)),
                    "latency_ms": float(latencies[arm][i]),
                }
            )
    _append(engine, records)
    report = schemas.ExperimentReport.model_validate(
        client.get(f"/api/v1/experiments/{experiment_id}", headers=auth(Role.compliance)).json()
    )
    arms = {a.arm: a for a in report.arms}
    ranks = experiment_stats.quantile_ranks(1000)
    assert ranks is not None
    for arm, found in arms.items():
        ordered = np.sort(latencies[arm])
        p99 = found.guardrails["p99_latency_ms"]
        assert p99.value == ordered[ranks[1] - 1]
        assert p99.ci95 == [ordered[ranks[0] - 1], ordered[ranks[2] - 1]]
    states = {
        arm: {name: g.state for name, g in found.guardrails.items()} for arm, found in arms.items()
    }
    assert states["champion"] == {
        "disparate_impact:sex": "holds",
        "ood_rate": "holds",
        "p99_latency_ms": "holds",
    }, arms["champion"].guardrails
    assert states["challenger-1"] == {
        "disparate_impact:sex": "breached",
        "ood_rate": "breached",
        "p99_latency_ms": "breached",
    }, arms["challenger-1"].guardrails
    assert {(b.arm, b.guardrail) for b in report.guardrails_breached} == {
        ("challenger-1", "disparate_impact:sex"),
        ("challenger-1", "ood_rate"),
        ("challenger-1", "p99_latency_ms"),
    }
