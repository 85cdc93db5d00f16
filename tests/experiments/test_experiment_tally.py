"""An experiment's kept counts (``governance.experiments.tally``), on both databases: after new
decisions, new outcomes and a corrected outcome, the report brought up to date from the kept
counts is the report counted from the start, figure for figure (AUC bins, default rates,
groups, shadows' pairs and the p99's order statistics)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from fastapi.testclient import TestClient

from core.auth.models import Role
from governance.experiments import tally
from tests.conftest import Served
from tests.experiments.test_experiments import _append
from tests.support.factories import cached_model


def _id(i: int) -> str:
    return str(uuid.UUID(int=1_000_000 + i))


def _records(
    versions: list[int], rng: np.random.Generator, start: int, n: int
) -> list[dict[str, Any]]:
    records = []
    for i in range(start, start + n):
        canary = rng.random() < 0.4
        decision_id = _id(i)
        score = float(np.round(rng.random(), 4))
        record = {
            "decision_id": decision_id,
            "kind": "decision",
            "created_at": datetime.now(UTC).isoformat(),
            "endpoint": "credit",
            "key_id": "test",
            "model": {
                "name": "credit",
                "version": versions[1] if canary else versions[0],
                "sha256": "0" * 64,
            },
            "route": "challenger-1" if canary else "live",
            "subject_id": decision_id,
            "features": {},
            "context": {"sex": "FM"[i % 2]},
            "label": int(score >= 0.5),
            "score": score,
            "outlier_score": 1.0,
            "is_outlier": bool(rng.random() < 0.05),
            "latency_ms": float(np.round(rng.exponential(5.0), 3)),
        }
        records.append(record)
        if not canary:
            shadow_score = float(np.clip(score + rng.normal(0, 0.2), 0, 1))
            records.append(
                {
                    **{k: v for k, v in record.items() if k != "latency_ms"},
                    "decision_id": str(uuid.UUID(int=2_000_000 + i)),
                    "kind": "shadow",
                    "model": {"name": "credit", "version": versions[2], "sha256": "1" * 64},
                    "route": "shadow",
                    "label": int(shadow_score >= 0.5),
                    "score": shadow_score,
                    "parent_decision_id": decision_id,
                }
            )
    return records


def _outcome(client: TestClient, auth: Any, decision_id: str, repaid: bool) -> None:
    response = client.post(
        f"/api/v1/decisions/{decision_id}/outcome",
        headers=auth(Role.outcomes),
        json={"outcome": int(repaid), "observed_at": datetime.now(UTC).isoformat()},
    )
    assert response.status_code in (200, 201), response.text


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in {"compute_ms"}}


def test_the_kept_counts_equal_a_count_from_the_start(
    client: TestClient, served: Served, auth: Any, engine: sa.Engine, settings: Any, data_repo: Any
) -> None:
    versions = [*served.versions, cached_model(settings, data_repo, seed=9)]
    body = {
        "name": "kept counts",
        "endpoint": "credit",
        "champion": {"model": "credit", "version": served.versions[0]},
        "challengers": [
            {"model": "credit", "version": served.versions[1], "mode": "canary", "weight": 0.4},
            {"model": "credit", "version": versions[2], "mode": "shadow"},
        ],
        "metric": {"kind": "auc", "mde": 0.05},
        "guardrails": {"attributes": ["sex"], "max_ood_rate": 0.2, "max_p99_latency_ms": 40},
        "stopping": {"kind": "fixed_horizon", "baseline": 0.7, "max_per_arm": 100_000},
    }
    declared = client.post("/api/v1/experiments", headers=auth(Role.data_scientist), json=body)
    assert declared.status_code == 201, declared.text
    experiment_id = declared.json()["experiment_id"]
    compliance = auth(Role.compliance)

    def report() -> dict[str, Any]:
        found = client.get(f"/api/v1/experiments/{experiment_id}", headers=compliance)
        assert found.status_code == 200, found.text
        return dict(found.json())

    rng = np.random.default_rng(3)
    # Enough for a p99 in the champion's arm at the first report: its slowest are kept.
    _append(engine, _records(versions, rng, 0, 1000))
    for i in range(0, 1000, 3):
        _outcome(client, auth, _id(i), repaid=bool(rng.random() < 0.7))
    # The alert scan keeps a running experiment's counts: the first report finds them kept.
    from governance.audit.alerts import Scanner

    app = client.app
    Scanner(app.state.sessions, app.state.settings)._experiments()
    [warmed] = tally.tallies_of(app.state.engine)._kept.entries()
    assert warmed.marks is not None
    first = report()
    assert first["decision"] == "continue"
    assert first["counted_to_seq"] == warmed.marks.seq

    # More decisions; outcomes for new and old decisions; and corrections of earlier ones.
    _append(engine, _records(versions, rng, 1000, 300))
    for i in list(range(1, 1300, 4)) + list(range(0, 90, 3)):
        _outcome(client, auth, _id(i), repaid=bool(rng.random() < 0.6))
    entries = tally.tallies_of(client.app.state.engine)._kept.entries()
    assert len(entries) == 1 and entries[0].marks is not None
    assert entries[0].marks.seq == first["counted_to_seq"], "the kept counts stop at the first"
    assert "champion" in entries[0].tails, "the champion's slowest latencies are kept"
    kept = report()
    tally._BY_ENGINE.clear()  # forget every kept count: the next report counts from the start
    fresh = report()
    assert _figures(kept) == _figures(fresh)
    arms = {a["arm"]: a for a in kept["arms"]}
    assert arms["champion"]["decisions"] + arms["challenger-1"]["decisions"] == 1300
    assert arms["challenger-2"]["decisions"] == arms["champion"]["decisions"]
    assert kept["counted_to_seq"] > first["counted_to_seq"]
    p99 = arms["champion"]["guardrails"]["p99_latency_ms"]
    assert p99["value"] is not None and p99["state"] == "holds"
