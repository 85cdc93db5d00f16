from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    selection_rate,
)
from fastapi.testclient import TestClient

from core.audit import ledger
from core.audit.models import AccessRecord
from core.auth.models import Role
from core.db import session_factory, transaction
from lineage.synthetic import applicant_features, generate_loans
from serving.decision_log import CHAIN, columns_of
from serving.models import DecisionOutcome, DecisionRecord
from tests.conftest import Served

DECISIONS = DecisionRecord.__table__
OUTCOMES = DecisionOutcome.__table__
ACCESS = AccessRecord.__table__


def _send(client: TestClient, auth, endpoint: str, n: int, seed: int, bias: float) -> list[dict]:
    """Decide for n synthetic applicants; returns [{decision, row}] with the true outcome."""
    rows = generate_loans(n, seed=seed, bias=bias).to_dict(orient="records")
    headers = auth(Role.predictor)
    sent = []
    for start in range(0, n, 100):
        chunk = rows[start : start + 100]
        response = client.post(
            f"/api/v1/endpoints/{endpoint}/predict",
            headers=headers,
            json={
                "instances": [
                    {
                        "subject_id": f"{endpoint}-{start + i}",
                        "features": applicant_features(row),
                        "context": {"sex": row["sex"], "age": int(row["age"])},
                    }
                    for i, row in enumerate(chunk)
                ]
            },
        )
        assert response.status_code == 200, response.text
        sent += [
            {"decision": d, "row": r}
            for d, r in zip(response.json()["decisions"], chunk, strict=True)
        ]
    return sent


def _endpoint(client: TestClient, served: Served, name: str) -> None:
    response = client.put(
        f"/api/v1/endpoints/{name}",
        headers=served.headers,
        json={"routes": [{"model": "credit", "version": served.versions[0]}]},
    )
    assert response.status_code == 200, response.text


def _report(client: TestClient, auth, **params: Any):
    return client.get("/api/v1/fairness", headers=auth(Role.compliance), params=params)


@pytest.fixture
def biased(client: TestClient, auth, served: Served) -> list[dict]:
    _endpoint(client, served, "biased")
    return _send(client, auth, "biased", 600, seed=21, bias=0.9)


def test_an_injected_bias_is_found_and_the_unbiased_control_is_not_flagged(
    client: TestClient, auth, served: Served, biased
) -> None:
    _endpoint(client, served, "control")
    _send(client, auth, "control", 600, seed=22, bias=0.0)
    found = _report(client, auth, endpoint="biased", attribute="sex")
    control = _report(client, auth, endpoint="control", attribute="sex")
    assert found.status_code == control.status_code == 200, found.text
    found, control = found.json(), control.json()
    assert found["n"] == control["n"] == 600
    rates = {g["group"]["sex"]: g["selection_rate"] for g in found["groups"]}
    assert rates["F"] < rates["M"]
    assert found["most_favoured_group"] == {"sex": "M"}
    assert found["four_fifths_verdict"] == "violated"
    assert found["four_fifths_violation"] is True
    assert found["disparate_impact_ratio_min"] < 0.8
    [women] = [g for g in found["groups"] if g["group"]["sex"] == "F"]
    assert women["four_fifths_violation"] is True
    low, high = women["selection_rate_ci95"]
    assert low < women["selection_rate"] < high
    assert found["selection_rate_test"]["p_value"] < 0.001
    assert "chi-squared" in found["selection_rate_test"]["test"]
    assert control["four_fifths_verdict"] == "holds"
    assert control["four_fifths_violation"] is False
    assert control["disparate_impact_ratio_min"] >= 0.8
    # the figures recorded at training time sit beside the live ones
    training = found["training"][f"credit v{served.versions[0]}"]
    assert set(training) == {"F", "M"} and training["F"]["selection_rate"] is not None


def test_figures_agree_with_fairlearn_on_the_same_decisions(
    client: TestClient, auth, biased, engine: sa.Engine
) -> None:
    observed = datetime.now(UTC).isoformat()
    response = client.post(
        "/api/v1/outcomes",
        headers=auth(Role.outcomes),
        json={
            "outcomes": [
                {
                    "decision_id": item["decision"]["decision_id"],
                    "outcome": int(item["row"]["repaid"]),
                    "observed_at": observed,
                }
                for item in biased
            ]
        },
    )
    assert response.status_code == 201, response.text
    # a correction is appended; the latest one counts
    first = biased[0]["decision"]["decision_id"]
    corrected = 1 - int(biased[0]["row"]["repaid"])
    again = client.post(
        f"/api/v1/decisions/{first}/outcome",
        headers=auth(Role.data_scientist),
        json={"outcome": corrected, "observed_at": observed},
    )
    assert again.status_code == 201 and again.json()["supersedes"] is not None
    body = _report(client, auth, endpoint="biased", attribute="sex", min_group_size=1).json()

    truth = {i["decision"]["decision_id"]: int(i["row"]["repaid"]) for i in biased}
    truth[first] = corrected
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(DECISIONS.c.decision_id, DECISIONS.c.label, DECISIONS.c.context).where(
                DECISIONS.c.endpoint == "biased"
            )
        ).all()
    y_pred = np.array([int(r.label == "1") for r in rows])
    y_true = np.array([truth[r.decision_id] for r in rows])
    sex = np.array([r.context["sex"] for r in rows])
    frame = MetricFrame(
        metrics=selection_rate, y_true=y_true, y_pred=y_pred, sensitive_features=sex
    )
    for group in body["groups"]:
        assert group["selection_rate"] == pytest.approx(
            frame.by_group[group["group"]["sex"]], abs=1e-9
        )
    assert body["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=sex), abs=1e-9
    )
    assert body["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y_true, y_pred, sensitive_features=sex), abs=1e-9
    )
    assert body["with_outcomes"] == 600
    assert body["equal_opportunity_difference"] is not None


def _insert(engine: sa.Engine, served: Served, rows: list[tuple[datetime, dict, str]]) -> None:
    """Decisions at chosen times, appended to the real chain (the API stamps 'now')."""
    contents = [
        {
            "decision_id": str(uuid.uuid4()),
            "kind": "decision",
            "created_at": at.isoformat(),
            "endpoint": "history",
            "key_id": "test",
            "model": {"name": "credit", "version": served.versions[0], "sha256": "0" * 64},
            "route": "live",
            "subject_id": None,
            "features": {},
            "context": context,
            "label": label,
            "score": 0.5,
        }
        for at, context, label in rows
    ]
    with transaction(session_factory(engine)) as session:
        ledger.append(
            session,
            chain=CHAIN,
            table=DECISIONS,
            contents=contents,
            columns_of=columns_of,
        )


def test_windows_partition_the_decisions_and_groups_intersect(
    client: TestClient, auth, served: Served, engine: sa.Engine
) -> None:
    _endpoint(client, served, "history")
    rng = np.random.default_rng(3)
    start = datetime(2026, 8, 1, tzinfo=UTC)
    rows = []
    for _ in range(900):
        at = start + timedelta(hours=int(rng.integers(0, 24 * 91)))
        context = {"sex": str(rng.choice(["F", "M"])), "age": int(rng.integers(18, 80))}
        rows.append((at, context, str(int(rng.integers(0, 2)))))
    rows.append((start, {"sex": "F"}, "1"))  # no age: unbinned
    _insert(engine, served, rows)

    for window in ("day", "week", "month"):
        body = _report(client, auth, endpoint="history", attribute="sex", window=window).json()
        assert body["n"] == len(rows)
        assert sum(p["n"] for p in body["trend"]) == len(rows), window
        periods = [p["period"] for p in body["trend"]]
        assert periods == sorted(periods)
    monthly = _report(client, auth, endpoint="history", attribute="sex", window="month").json()
    expected = {}
    for at, _c, _l in rows:
        key = f"{at:%Y-%m}-01"
        expected[key] = expected.get(key, 0) + 1
    assert {p["period"]: p["n"] for p in monthly["trend"]} == expected
    weekly = _report(client, auth, endpoint="history", attribute="sex", window="week").json()
    for period in weekly["trend"]:
        assert datetime.fromisoformat(period["period"]).weekday() == 0  # Mondays

    both = _report(
        client,
        auth,
        endpoint="history",
        attribute=["sex", "age"],
        bins="age:18,40,60,120",
        min_group_size=1,
    ).json()
    counted: dict[tuple[str, str], list[int]] = {}
    for _at, context, label in rows:
        age: Any = context.get("age")
        band = (
            "unbinned"
            if age is None
            else next(
                f"[{lo}, {hi})" for lo, hi in ((18, 40), (40, 60), (60, 120)) if lo <= age < hi
            )
        )
        entry = counted.setdefault((context["sex"], band), [0, 0])
        entry[0] += 1
        entry[1] += label == "1"
    got = {
        (g["group"]["sex"], g["group"]["age"]): [g["n"], g["favourable"]] for g in both["groups"]
    }
    assert got == counted

    small = _report(
        client, auth, endpoint="history", attribute=["sex", "age"], bins="age:18,40,60,120"
    ).json()
    [unbinned] = [g for g in small["groups"] if g["group"]["age"] == "unbinned"]
    assert unbinned["n"] == 1 and unbinned["too_small"] is True
    assert unbinned["below_minimum_size"] is True
    # A small group stays in the comparison (its ratio is shown) but no verdict rests on it.
    assert unbinned["disparate_impact_ratio"] is not None
    assert unbinned["four_fifths_verdict"] == "not_assessable"
    assert small["too_small_groups"] >= 1
    assert small["compared_groups"] == len(small["groups"]) - small["too_small_groups"]
    assert small["four_fifths_verdict"] in ("not_assessable", "violated")
    assert any("age=unbinned has 1 decisions" in r for r in small["verdict_reasons"])


def test_bad_queries_get_clear_errors_and_reports_are_for_compliance_only(
    client: TestClient, auth, served: Served, engine: sa.Engine
) -> None:
    def field(response) -> str:
        assert response.status_code == 422, response.text
        details = response.json()["error"]["details"]
        return details[0]["field"]

    assert field(_report(client, auth, endpoint="credit", attribute="religion")) == "attribute"
    assert (
        field(
            _report(
                client,
                auth,
                endpoint="credit",
                attribute="sex",
                since="2026-12-01T00:00:00Z",
                until="2026-11-01T00:00:00Z",
            )
        )
        == "since"
    )
    assert field(_report(client, auth, endpoint="credit", attribute="sex", model="nope")) == "model"
    assert (
        field(_report(client, auth, endpoint="credit", attribute="age", bins="age:40,18")) == "bins"
    )
    assert field(_report(client, auth, endpoint="credit", attribute="sex", window="year")).endswith(
        "window"
    )
    assert field(
        _report(client, auth, endpoint="credit", attribute="sex", since="yesterday")
    ).endswith("since")
    assert _report(client, auth, endpoint="nowhere", attribute="sex").status_code == 404
    for role in (Role.appeals, Role.data_scientist, Role.predictor):
        denied = client.get(
            "/api/v1/fairness",
            headers=auth(role),
            params={"endpoint": "credit", "attribute": "sex"},
        )
        assert denied.status_code == 403
    ok = _report(client, auth, endpoint="credit", attribute="sex")
    assert ok.status_code == 200 and ok.json()["n"] == 0
    with engine.connect() as conn:
        trail = conn.execute(
            sa.select(ACCESS.c.action, ACCESS.c.target).where(ACCESS.c.action == "fairness.report")
        ).all()
    assert [tuple(t) for t in trail] == [("fairness.report", "credit")]


def test_outcomes_are_appended_checked_and_all_or_nothing(
    client: TestClient, auth, served: Served, engine: sa.Engine
) -> None:
    [item] = _send(client, auth, "credit", 1, seed=5, bias=0.0)
    decision_id = item["decision"]["decision_id"]
    now = datetime.now(UTC).isoformat()
    writer = auth(Role.outcomes)
    path = f"/api/v1/decisions/{decision_id}/outcome"
    assert (
        client.post(
            path, headers=auth(Role.predictor), json={"outcome": 1, "observed_at": now}
        ).status_code
        == 403
    )
    bad = client.post(path, headers=writer, json={"outcome": "maybe", "observed_at": now})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "outcome"
    naive = client.post(
        path, headers=writer, json={"outcome": 1, "observed_at": "2026-11-28T10:00:00"}
    )
    assert naive.status_code == 422 and "observed_at" in naive.text
    early = client.post(
        path, headers=writer, json={"outcome": 1, "observed_at": "2020-01-01T00:00:00Z"}
    )
    assert early.status_code == 422 and "before the decision" in early.text
    unknown = "00000000-0000-4000-8000-000000000000"
    assert (
        client.post(
            f"/api/v1/decisions/{unknown}/outcome",
            headers=writer,
            json={"outcome": 1, "observed_at": now},
        ).status_code
        == 404
    )
    first = client.post(path, headers=writer, json={"outcome": 1, "observed_at": now})
    second = client.post(path, headers=writer, json={"outcome": 0, "observed_at": now})
    assert first.status_code == second.status_code == 201
    assert second.json()["supersedes"] == first.json()["id"]
    bulk = client.post(
        "/api/v1/outcomes",
        headers=writer,
        json={
            "outcomes": [
                {"decision_id": decision_id, "outcome": 1, "observed_at": now},
                {"decision_id": unknown, "outcome": 1, "observed_at": now},
            ]
        },
    )
    assert bulk.status_code == 422
    assert bulk.json()["error"]["details"][0]["field"] == "outcomes.1.decision_id"
    history = client.get(f"/api/v1/decisions/{decision_id}/outcomes", headers=auth(Role.compliance))
    assert [h["outcome"] for h in history.json()] == ["1", "0"]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(OUTCOMES)).scalar() == 2
