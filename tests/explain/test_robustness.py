from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from core.auth.models import Role
from explain.context import ModelContext
from explain.models import Explanation
from explain.robustness import MAX_ITER, assess
from tests.conftest import Served
from tests.explain.test_counterfactual_constraints import (
    CONSTRAINT,
    DENIED,
    book_context,
    decide,
    immutable,
)
from tests.support.factories import applicant

IMMUTABLE = {"credit_history_months", "late_payments", "housing"}
DEMO_DIRECTIONS = {
    "income": "increase",
    "debt_to_income": "decrease",
    "employment_years": "increase",
    "loan_amount": "decrease",
}
VOLATILE = {"cached", "computed_at", "compute_ms"}


def _decide(client: TestClient, auth, features: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        "/api/v1/endpoints/credit/predict",
        headers=auth(Role.predictor),
        json={"features": features, "context": {"sex": "M", "age": 33}},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_the_smallest_flip_is_real_respects_the_spec_and_repeats_exactly(
    client: TestClient, auth, served: Served, engine: sa.Engine
) -> None:
    decisions = [
        _decide(client, auth, applicant(income=income, debt_to_income=dti))
        for income, dti in ((52_000.0, 0.31), (30_000.0, 0.5), (90_000.0, 0.1))
    ]
    headers = auth(Role.appeals)
    for decision in decisions:
        path = f"/api/v1/decisions/{decision['decision_id']}/robustness"
        first = client.get(path, headers=headers)
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["verdict"] in {"fragile", "robust"}
        assert body["label"] == decision["label"] and body["seed"] == 0
        assert body["threshold"]["fragile_below"] == 0.1
        searched = body["searched"]
        assert searched["directions"] == DEMO_DIRECTIONS
        assert set(searched["features"]) == set(body["changeable"])
        assert not set(searched["features"]) & IMMUTABLE
        assert f"{searched['numeric_candidates']} candidates" in body["message"]
        if body["perturbation"] is None:
            assert body["verdict"] == "robust"
            assert body["message"].startswith("no flip found within radius")
            continue
        assert body["flips_on_replay"] is True, body
        for name, change in body["perturbation"].items():
            if DEMO_DIRECTIONS.get(name) == "increase":
                assert change["to"] > change["from"], body["perturbation"]
            if DEMO_DIRECTIONS.get(name) == "decrease":
                assert change["to"] < change["from"], body["perturbation"]
        changed = set(body["perturbation"])
        assert changed and not changed & IMMUTABLE and not changed & {"sex", "age"}
        replay = client.post(
            f"/api/v1/decisions/{decision['decision_id']}/replay",
            headers=headers,
            json={"overrides": {k: v["to"] for k, v in body["perturbation"].items()}},
        )
        assert replay.status_code == 200, replay.text
        assert replay.json()["label_changed"] is True
        assert body["verdict"] == ("fragile" if body["distance"] < 0.1 else "robust")
        with engine.begin() as conn:
            conn.execute(
                Explanation.__table__.delete().where(Explanation.__table__.c.method == "robustness")
            )
        again = client.get(path, headers=headers).json()
        assert again["cached"] is False
        assert {k: v for k, v in again.items() if k not in VOLATILE} == {
            k: v for k, v in body.items() if k not in VOLATILE
        }
    assert (
        client.get(
            f"/api/v1/decisions/{decisions[0]['decision_id']}/robustness",
            headers=auth(Role.predictor),
        ).status_code
        == 403
    )


# The probe itself, on a loan book shaped like the real ones (see test_counterfactual_constraints).

APPROVED: dict[str, Any] = {
    "income": 60000.0,
    "housing_to_income": 0.10,
    "payments_to_income": 0.16,
    "loan_amount": 8000.0,
    "checking_status": "A12",
    "savings": 2,
    "employment_years": 5.0,
    "tenure": "own",
}
DECREASE_ONLY = {"payments_to_income": "decrease", "loan_amount": "decrease"}


def _assess(context: ModelContext, features: dict[str, Any], label: str) -> dict[str, Any]:
    assert decide(context, features) == label
    return assess(context, features, label, seed=0, fragile_below=0.1)


@pytest.fixture(scope="module")
def numeric_only() -> ModelContext:
    return book_context(change=immutable("checking_status", "savings"))


@pytest.fixture(scope="module")
def probed(numeric_only: ModelContext) -> dict[float, dict[str, Any]]:
    """The probe's answers by loan amount, computed once for the tests below."""
    return {}


@pytest.mark.parametrize("loan", [8000.0, 12000.0])
def test_the_probe_moves_each_feature_only_in_its_direction_and_keeps_the_constraint(
    numeric_only: ModelContext, probed: dict[float, dict[str, Any]], loan: float
) -> None:
    applicant = {**APPROVED, "loan_amount": loan}
    body = probed.setdefault(loan, _assess(numeric_only, applicant, "good"))
    assert body["flips_on_replay"] is True, body
    record = {**applicant, **{n: c["to"] for n, c in body["perturbation"].items()}}
    for name in DECREASE_ONLY:
        # raising an amount the spec says may only decrease is not a way to flip it
        assert record[name] <= applicant[name], (name, body["perturbation"])
    assert record["payments_to_income"] >= record["housing_to_income"]
    assert decide(numeric_only, record) == "bad"
    searched = body["searched"]
    assert searched["directions"] == DECREASE_ONLY
    assert searched["numeric"]["loan_amount"]["range"] == [500.0, loan]
    assert searched["linear_constraints"]["enforced"] == [CONSTRAINT]
    assert searched["attack_ran"] is True and searched["iterations"] == MAX_ITER
    assert searched["candidates"] == searched["numeric_candidates"] > 0
    assert body["message"].startswith(
        f"the smallest flip found within radius {searched['radius']:.4g} over the numeric "
        "features [income, housing_to_income, payments_to_income, loan_amount, employment_years]"
    )


def test_no_flip_found_says_what_was_searched_and_claims_no_more() -> None:
    only_loan = book_context(
        change=immutable(
            "income",
            "housing_to_income",
            "payments_to_income",
            "checking_status",
            "savings",
            "employment_years",
        )
    )
    body = _assess(only_loan, APPROVED, "good")
    # lowering the loan only helps this applicant, and the loan may not be raised
    assert body["perturbation"] is None and body["verdict"] == "robust"
    searched = body["searched"]
    assert searched["features"] == ["loan_amount"]
    assert searched["directions"] == {"loan_amount": "decrease"}
    assert searched["attack_ran"] is False and searched["iterations"] == 0
    loans = only_loan.train["loan_amount"].to_numpy(float)
    q1, q3 = np.quantile(loans, [0.25, 0.75])
    spread = (q3 - q1) / 1.349
    reach = np.abs(np.clip((loans - 8000.0) / spread, (500.0 - 8000.0) / spread, 0.0))
    assert searched["radius"] == pytest.approx(float(reach.max()))
    assert searched["numeric_candidates"] == len(loans)
    assert body["message"] == (
        f"no flip found within radius {searched['radius']:.4g} over the numeric features "
        "[loan_amount] (each within its bounds and direction) in "
        f"{len(loans)} candidates (no training row's values flip it, so HopSkipJump had no "
        "starting point); changes of two or more categorical features together, and of "
        "categorical and numeric features together were not searched, and a change outside "
        "this search may still flip the decision"
    )


def test_a_missing_value_is_never_perturbed() -> None:
    nullable_only = book_context(
        change=immutable(
            "income", "housing_to_income", "payments_to_income", "loan_amount", "savings"
        )
    )
    applicant = {
        **DENIED,
        "income": 45000.0,
        "payments_to_income": 0.25,
        "checking_status": None,
        "employment_years": None,
    }
    # "no checking account" would flip it, but nobody said this applicant has none
    assert decide(nullable_only, {**applicant, "checking_status": "A14"}) == "good"
    body = _assess(nullable_only, applicant, "bad")
    assert body["perturbation"] is None
    assert body["searched"]["features"] == []
    assert body["searched"]["kept_missing"] == ["checking_status", "employment_years"]
    assert body["message"].startswith("nothing was searched: no feature may change")


def test_the_probe_repeats_exactly(probed: dict[float, dict[str, Any]]) -> None:
    fresh = book_context(change=immutable("checking_status", "savings"))
    first = probed.get(APPROVED["loan_amount"]) or _assess(fresh, APPROVED, "good")
    assert first == _assess(fresh, APPROVED, "good")
