"""Every per-decision and per-model feature works for a model trained elsewhere and registered
through ``TrainingCapture``, as for one govern trained (issue 17: they answered 500)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from core.auth.models import Role
from lineage.capture import TrainingCapture
from tests.conftest import Served
from tests.support.factories import DataRepo, applicant, decision_reports, serve_live

NAMES = ["income", "debt_to_income", "late_payments", "purpose"]


def _external(client: TestClient, auth, data_repo: DataRepo) -> Served:
    capture = TrainingCapture(
        dataset={
            "name": "loans",
            "repo": str(data_repo.repo),
            "path": data_repo.path,
            "rev": data_repo.commits[0],
        },
        seeds={"estimator": 5},
    )
    with capture:
        frame = capture.read_data()
        pipeline = Pipeline(
            [
                (
                    "pre",
                    ColumnTransformer(
                        [
                            ("num", "passthrough", NAMES[:3]),
                            ("cat", OneHotEncoder(handle_unknown="ignore"), ["purpose"]),
                        ]
                    ),
                ),
                ("model", RandomForestClassifier(n_estimators=30, max_depth=6, random_state=5)),
            ]
        ).fit(frame[NAMES], frame["repaid"])
    version = capture.register(
        pipeline,
        model="ext",
        api_key=auth(Role.data_scientist)["Authorization"].split()[1],
        client=client,
        target={"column": "repaid", "positive_class": 1},
        features=[
            {"name": "income", "type": "numeric", "description": "Income", "direction": "increase"},
            {"name": "debt_to_income", "type": "numeric", "bounds": [0, 1]},
            {"name": "late_payments", "type": "numeric", "immutable": True},
            {"name": "purpose", "type": "categorical"},
        ],
        protected=[{"name": "sex"}],
        gate={"metric": "roc_auc", "threshold": 0.55},
    )
    admin = auth(Role.admin)
    serve_live(client, admin, "ext", "ext", version["version"])
    return Served(endpoint="ext", versions=[version["version"]], headers=admin)


@pytest.mark.parametrize("source", ["internal", "external"])
def test_every_explanation_report_and_dossier_works_for_internal_and_external_models(
    client: TestClient, auth, data_repo: DataRepo, request: pytest.FixtureRequest, source: str
) -> None:
    if source == "internal":
        served: Served = request.getfixturevalue("served")
        features = applicant(income=21000.0, debt_to_income=0.62, late_payments=4)
    else:
        served = _external(client, auth, data_repo)
        features = {
            k: v
            for k, v in applicant(income=21000.0, debt_to_income=0.62, late_payments=4).items()
            if k in NAMES
        }
    ids = []
    for i in range(12):
        response = client.post(
            f"/api/v1/endpoints/{served.endpoint}/predict",
            headers=auth(Role.predictor),
            json={
                "features": {**features, "income": features["income"] + 1000 * i},
                "context": {"sex": "F" if i % 2 else "M"},
            },
        )
        assert response.status_code == 200, response.text
        ids.append(response.json()["decision_id"])
    decision = ids[0]
    answers = decision_reports(
        client,
        auth,
        decision,
        served.endpoint,
        "credit" if source == "internal" else "ext",
        served.versions[0],
    )
    failed = {name: r.text[:300] for name, r in answers.items() if r.status_code != 200}
    assert failed == {}
    shap = answers["shap"].json()
    assert set(shap["values"]) == set(features)
    assert answers["dossier"].json()["decision"]["decision_id"] == decision
    assert {g["group"]["sex"] for g in answers["fairness"].json()["groups"]} == {"F", "M"}
    assert answers["drift"].json()["n"] == 12
    assert answers["counterfactual"].json()["counterfactuals"] is not None
