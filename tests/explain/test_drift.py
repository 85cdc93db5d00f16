from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from core.audit import ledger
from core.auth.models import Role
from core.db import session_factory, transaction
from explain.drift import stats as drift
from lineage.loanbook import generate_loan_book
from lineage.synthetic import applicant_features, generate_loans
from serving.decision_log import CHAIN, columns_of
from serving.models import DecisionRecord
from tests.conftest import Served


def _stream(engine: sa.Engine, served: Served, endpoint: str, n: int, seed: int, shift: float):
    """n logged decisions whose inputs come from the training generator, income scaled."""
    rows = generate_loans(n, seed=seed).to_dict(orient="records")
    inputs = []
    for row in rows:
        features = applicant_features(row)
        features["income"] = round(features["income"] * shift, 2)
        inputs.append(features)
    _log(engine, endpoint, "credit", served.versions[0], inputs)


def _log(
    engine: sa.Engine, endpoint: str, model: str, version: int, inputs: list[dict[str, Any]]
) -> None:
    """Decisions with these logged inputs, appended through the real hash chain."""
    contents = [
        {
            "decision_id": str(uuid.uuid4()),
            "kind": "decision",
            "created_at": datetime.now(UTC).isoformat(),
            "endpoint": endpoint,
            "key_id": "test",
            "model": {"name": model, "version": version, "sha256": "0" * 64},
            "route": "live",
            "subject_id": None,
            "features": features,
            "context": {},
            "label": 1,
            "score": 0.6,
        }
        for features in inputs
    ]
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
    assert shifted["verdict"] == report["verdict"] == "drifted"
    assert shifted["verdict_reasons"][0].startswith(f"credit v{served.versions[0]}: income: ")
    assert report["drifted_features"] == ["income"], report["features"]
    income = report["features"]["income"]
    assert income["verdict"] == "drifted" and income["drifted"] is True
    assert income["p_value_holm"] < 0.05 and income["psi"] > income["psi_threshold_used"] >= 0.1
    assert income["psi_threshold_used"] == max(0.1, income["psi_null_quantile"])
    assert income["test"].startswith("Kolmogorov-Smirnov")
    # Both sides on the test's grid: every training row and every decision is in one bin, and the
    # shifted incomes pile up in the top bins.
    histogram = income["histogram"]
    assert len(histogram["labels"]) == len(histogram["training"]) == income["bins"]
    assert sum(histogram["training"]) == report["training"]["rows"]
    assert sum(histogram["live"]) == income["n"] == 800
    assert histogram["labels"][0].startswith("< ") and histogram["labels"][-1] == "missing"
    top = histogram["labels"].index(next(x for x in histogram["labels"] if x.startswith(">= ")))
    assert (
        histogram["live"][top] / 800 > 2 * histogram["training"][top] / report["training"]["rows"]
    )
    purpose = report["features"]["purpose"]["histogram"]
    assert purpose["labels"][-2:] == ["other", "missing"] and sum(purpose["live"]) == 800
    assert income["p_value_method"] == "asymptotic" and income["min_expected_count"] >= 5
    assert report["features"]["purpose"]["test"].startswith("Pearson chi-squared")
    assert report["min_samples"] == 30 and report["resamples"] >= 999
    assert "99% quantile of the PSI" in report["method"]
    assert calm["drifted"] is False, calm["versions"][0]["features"]
    assert calm["verdict"] == "not_drifted" and calm["versions"][0]["drifted_features"] == []
    assert {f["verdict"] for f in calm["versions"][0]["features"].values()} == {"not_drifted"}


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
    assert empty.json()["verdict"] == "insufficient_data" and empty.json()["drifted"] is False
    assert empty.json()["verdict_reasons"] == ["no decisions in the window"]
    for name, value in (("min_samples", "1"), ("alpha", "1"), ("psi_threshold", "0")):
        refused = client.get(
            "/api/v1/drift", headers=headers, params={"endpoint": "credit", name: value}
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"][0]["field"] == name
    for role in (Role.appeals, Role.predictor):
        assert (
            client.get(
                "/api/v1/drift", headers=auth(role), params={"endpoint": "credit"}
            ).status_code
            == 403
        )


def test_the_database_counts_codes_and_nulls_as_the_training_rows_are_counted(
    engine: sa.Engine,
) -> None:
    """Integer codes in any JSON form (2, 2.0, "2") are one category, a JSON null and an absent
    feature are both missing, on SQLite and PostgreSQL alike, and equal to counting a frame."""
    band = [2, 2.0, "2", "2.0", 3, "3", None, 7, "x", 1, None]
    amount = [0.5, 1.0, 1.5, None, 2.0, 2.5, 3.0, None, 0.0, 1.0, 5.0]
    inputs: list[dict[str, Any]] = [
        {"band": b, "amount": a} for b, a in zip(band, amount, strict=True)
    ]
    inputs.append({"amount": 1.2})  # band absent
    _log(engine, "counts", "m", 1, inputs)
    grid_list = [
        drift.Grid("band", False, categories=("1", "2", "3")),
        drift.Grid("amount", True, edges=(1.0, 2.0)),
    ]
    with engine.connect() as connection:
        n, counts = drift.drift_counts(
            connection, grid_list, [drift.DECISIONS.c.endpoint == "counts"]
        )
    frame = pd.DataFrame(inputs, dtype=object)
    assert n == 12
    # band: 1, 2, 3, other, missing; amount: < 1, [1, 2), >= 2, missing
    assert counts["band"].tolist() == [1, 4, 2, 2, 3]
    assert counts["amount"].tolist() == [2, 4, 4, 2]
    for g in grid_list:
        assert counts[g.name].tolist() == drift.training_counts(g, frame).tolist()


def _book_inputs(n: int, seed: int) -> list[dict[str, Any]]:
    """Loan-book applicants as decisions log them: integer codes as ints, a gap as null."""
    frame = generate_loan_book(n, seed=seed)
    names = [
        "checking_status", "employment", "housing", "income", "payments_to_income",
        "housing_to_income", "loan_amount", "purpose", "has_guarantor", "marital_status", "age",
    ]  # fmt: skip

    def logged(value: Any) -> Any:
        if isinstance(value, np.generic):
            value = value.item()
        return None if isinstance(value, float) and math.isnan(value) else value

    return [
        {str(k): logged(v) for k, v in record.items()}
        for record in frame[names].to_dict(orient="records")
    ]


def test_a_small_window_is_insufficient_data_even_when_far_off(
    client: TestClient, auth, served_book: Served, engine: sa.Engine
) -> None:
    """12 decisions with incomes tripled: too few to say, and the report says so; the same
    window is judged when the caller lowers the minimum, the same way every time."""
    version = served_book.versions[0]
    response = client.put(
        "/api/v1/endpoints/small",
        headers=served_book.headers,
        json={"routes": [{"model": "loanbook", "version": version}]},
    )
    assert response.status_code == 200, response.text
    inputs = _book_inputs(12, seed=5)
    for row in inputs:
        row["income"] = None if row["income"] is None else 3 * row["income"]
    _log(engine, "small", "loanbook", version, inputs)
    headers = auth(Role.compliance)
    response = client.get("/api/v1/drift", headers=headers, params={"endpoint": "small"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verdict"] == "insufficient_data" and body["drifted"] is False
    assert body["verdict_reasons"] == [
        f"loanbook v{version}: 12 decisions in the window, fewer than the minimum of 30"
    ]
    [report] = body["versions"]
    assert report["verdict"] == "insufficient_data" and report["drifted_features"] == []
    assert {f["verdict"] for f in report["features"].values()} == {"insufficient_data"}
    assert all("fewer than the minimum of 30" in f["reason"] for f in report["features"].values())
    params = {"endpoint": "small", "min_samples": 10}
    lowered = client.get("/api/v1/drift", headers=headers, params=params).json()
    assert (
        lowered["verdict"] == "drifted" and "income" in lowered["versions"][0]["drifted_features"]
    )
    again = client.get("/api/v1/drift", headers=headers, params=params).json()
    assert again["versions"] == lowered["versions"]  # seeded: the same request, the same answer


def test_a_loan_book_with_integer_codes_and_gaps_is_judged_on_like_terms(
    client: TestClient, auth, served_book: Served, engine: sa.Engine
) -> None:
    """Decisions drawn like the training rows (integer-coded employment and housing, incomes and
    purposes missing at the training rates) are not drifted, and their gaps are counted; when
    the missing rate of income jumps to a half, income drifts."""
    version = served_book.versions[0]
    inputs = _book_inputs(400, seed=77)
    _log(engine, "lending", "loanbook", version, inputs)
    headers = auth(Role.data_scientist)
    body = client.get("/api/v1/drift", headers=headers, params={"endpoint": "lending"}).json()
    [report] = body["versions"]
    assert body["verdict"] == report["verdict"] == "not_drifted", body["verdict_reasons"]
    assert report["seed"] == 3  # the spec's seeds.explain
    features = report["features"]
    for name in ("employment", "housing"):  # codes matched: nothing lands in "other"
        assert features[name]["psi"] < 0.1 and features[name]["missing"] == 0
    income, purpose = features["income"], features["purpose"]
    assert income["missing"] == sum(r["income"] is None for r in inputs) > 0
    assert 0.04 < income["training_missing_rate"] < 0.12
    assert purpose["missing"] == sum(r["purpose"] is None for r in inputs) > 0
    gaps = _book_inputs(400, seed=78)
    for row in gaps[::2]:
        row["income"] = None
    _log(engine, "lending", "loanbook", version, gaps)
    both = client.get("/api/v1/drift", headers=headers, params={"endpoint": "lending"}).json()
    [report] = both["versions"]
    assert report["drifted_features"] == ["income"], report["verdict_reasons"]
    assert report["features"]["income"]["missing_rate"] > 0.25
