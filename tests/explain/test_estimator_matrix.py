"""Every estimator govern trains through the whole path (issue 23's test matrix): a spec trains
it, an endpoint serves it, and each decision is explained (SHAP with its additivity, an anchor,
counterfactuals, robustness, reasons), reported (fairness, drift, the card, the dossier) and
rebuilt ``identical``. XGBoost and LightGBM are run with their recorded thread count and seed."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.auth.models import Role
from tests.conftest import KeyMaker
from tests.support.factories import (
    DataRepo,
    applicant,
    cached_model,
    decision_reports,
    rebuilt,
    serve_live,
)

LOGISTIC = "sklearn.linear_model.LogisticRegression"
# case -> (estimator class, its parameters, the rest of the spec)
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "histgradientboosting": (
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {"max_iter": 40},
        {},
    ),
    "xgboost": (
        "xgboost.XGBClassifier",
        {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.1},
        {},
    ),
    "lightgbm": (
        "lightgbm.LGBMClassifier",
        {"n_estimators": 60, "num_leaves": 15, "learning_rate": 0.1},
        {},
    ),
    "logistic": (LOGISTIC, {"max_iter": 500}, {}),
    "scorecard": (
        LOGISTIC,
        {"max_iter": 500},
        {"scorecard": {"binning": "monotone", "max_bins": 5}},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_estimator_trains_serves_explains_reports_and_rebuilds_identical(
    client: TestClient,
    auth: Any,
    settings: Any,
    data_repo: DataRepo,
    make_key: KeyMaker,
    case: str,
) -> None:
    model = case
    estimator, params, rest = CASES[case]
    version = cached_model(
        settings, data_repo, model=model, estimator={"class": estimator, "params": params}, **rest
    )
    admin, scientist = auth(Role.admin), auth(Role.data_scientist)
    serve_live(client, admin, model, model, version)
    lineage = client.get(
        f"/api/v1/models/{model}/versions/{version}/lineage", headers=scientist
    ).json()["lineage"]
    assert lineage["estimator"]["class"] == estimator
    params = lineage["estimator"]["params"]
    if estimator.startswith(("xgboost", "lightgbm")):
        assert params["n_jobs"] == 1 and params["random_state"] == lineage["seeds"]["estimator"]
    if estimator.startswith("lightgbm"):
        assert params["deterministic"] is True and params["force_row_wise"] is True

    ids = []
    for i in range(12):
        decided = client.post(
            f"/api/v1/endpoints/{model}/predict",
            headers=auth(Role.predictor),
            json={
                "features": applicant(income=21000.0 + 3000 * i, late_payments=i % 4),
                "context": {"sex": "FM"[i % 2]},
            },
        )
        assert decided.status_code == 200, decided.text
        ids.append(decided.json()["decision_id"])
    decision = ids[0]
    answers = decision_reports(client, auth, decision, model, model, version)
    failed = {name: r.text[:300] for name, r in answers.items() if r.status_code != 200}
    assert failed == {}
    shap = answers["shap"].json()
    assert set(shap["values"]) == set(applicant())
    assert shap["additivity_error"] < 1e-4, shap
    tree = estimator != LOGISTIC
    assert ("TreeExplainer" in shap["method"]) == tree, shap["method"]
    if tree:
        assert shap["space"] == "log_odds" and shap["seed"] is None
    again = client.get(f"/api/v1/decisions/{decision}/explanations/shap", headers=scientist)
    assert again.json()["values"] == shap["values"], "the same request, the same explanation"
    assert answers["drift"].json()["n"] == 12
    assert answers["dossier"].json()["decision"]["decision_id"] == decision
    if case == "scorecard":
        _check_scorecard(client, auth, model, version, ids)

    rebuild = rebuilt(client, scientist, model, version)
    assert rebuild["status"] == "succeeded", rebuild
    assert rebuild["verdict"] == "identical", rebuild


def _check_scorecard(
    client: TestClient, auth: Any, model: str, version: int, ids: list[str]
) -> None:
    """The card shows the points per bin; each decision's points add up to its score, and its
    reasons are the features with the most points lost against their best bin."""
    officer = auth(Role.compliance)
    card = client.get(f"/api/v1/models/{model}/versions/{version}/card", headers=officer).json()
    table = card["scorecard"]
    assert {f["feature"] for f in table["features"]} == set(applicant())
    for feature in table["features"]:
        assert 2 <= len(feature["bins"]) <= 5 + 2  # at most max_bins, then other and missing
        points = [b["points"] for b in feature["bins"]]
        assert feature["max_points"] == max(points)
        if feature["direction"] is not None:  # monotone: the rate only rises or only falls
            rates = [b["positive_rate"] for b in feature["bins"][:-1]]
            steps = [b - a for a, b in itertools.pairwise(rates)]
            assert all(d >= 0 for d in steps) or all(d <= 0 for d in steps), rates
    html = client.get(
        f"/api/v1/models/{model}/versions/{version}/card",
        headers={**officer, "Accept": "text/html"},
    ).text
    assert "Scorecard" in html and "points double the odds" in html
    from tests.console.support import sign_in

    console = TestClient(client.app)
    sign_in(console, officer["Authorization"].split(" ", 1)[1])
    page = console.get(f"/console/models/{model}/versions/{version}").text
    assert 'id="scorecard-h"' in page and page.count('class="scorecard"') == len(table["features"])
    adverse = 0
    for decision in ids:
        found = client.get(f"/api/v1/decisions/{decision}", headers=officer).json()
        reasons = client.get(f"/api/v1/decisions/{decision}/reasons", headers=officer).json()
        if reasons["favourable"]:
            continue
        adverse += 1
        score = float(found["score"])
        log_odds = math.log(score / (1 - score))  # the positive class, 1 = repaid, is favourable
        expected = table["offset"] + table["factor"] * log_odds
        assert reasons["scorecard"]["score"] == pytest.approx(expected, abs=1e-4)
        lost = [r["points_lost"] for r in reasons["reasons"]]
        assert lost == sorted(lost, reverse=True) and all(x > 0 for x in lost)
        best = {f["feature"]: f["max_points"] for f in table["features"]}
        for r in reasons["reasons"]:
            mine = reasons["scorecard"]["points"][r["feature"]]
            assert r["points_lost"] == pytest.approx(best[r["feature"]] - mine, abs=1e-5)
        assert reasons["source"]["seed"] is None and "scorecard" in reasons["source"]["method"]
    assert adverse > 0, "the test needs an unfavourable decision"
