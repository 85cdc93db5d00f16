"""XGBoost and LightGBM models registered from their libraries' own formats (JSON, UBJSON, the
LightGBM text model), on both databases: each is served, scored as the library scores it,
explained by the tree explainer with its additivity, and its upload kept in the store; what
does not fit the declared features is refused naming the field."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from fastapi.testclient import TestClient

from core.auth.models import Role
from lineage.artifacts import ArtifactStore
from tests.support.factories import DataRepo, serve_live

NUMERIC = ["income", "debt_to_income", "credit_history_months", "late_payments"]


def _frame(data_repo: DataRepo) -> pd.DataFrame:
    from lineage.capture import TrainingCapture

    dataset = {
        "name": "loans",
        "repo": str(data_repo.repo),
        "path": data_repo.path,
        "rev": data_repo.commits[0],
    }
    with TrainingCapture(dataset=dataset, seeds={"estimator": 4}) as capture:
        return capture.read_data()


def _upload(fmt: str, frame: pd.DataFrame, names: list[str] | None = None) -> bytes:
    x, y = frame[NUMERIC].to_numpy(dtype=float), frame["repaid"].to_numpy()
    if fmt.startswith("xgboost"):
        model = xgboost.XGBClassifier(n_estimators=30, max_depth=3, random_state=4, n_jobs=1)
        model.fit(pd.DataFrame(x, columns=names) if names else x, y)
        return bytes(model.get_booster().save_raw("json" if fmt == "xgboost-json" else "ubj"))
    model = lightgbm.LGBMClassifier(
        n_estimators=30, num_leaves=7, random_state=4, n_jobs=1, verbose=-1
    )
    model.fit(pd.DataFrame(x, columns=names) if names else x, y)
    return model.booster_.model_to_string().encode()


def _body(data_repo: DataRepo, fmt: str, content: bytes, **changes: Any) -> dict[str, Any]:
    return {
        "dataset": {
            "name": "loans",
            "repo": str(data_repo.repo),
            "path": data_repo.path,
            "rev": data_repo.commits[0],
        },
        "seeds": {"estimator": 4},
        "target": {"column": "repaid", "positive_class": 1},
        "features": [{"name": n, "type": "numeric"} for n in NUMERIC],
        "protected": [{"name": "sex"}],
        "gate": {"metric": "roc_auc", "threshold": 0.55},
        "params": {"n_estimators": 30},
        "artifact": {"format": fmt, "content_base64": base64.b64encode(content).decode()},
        **changes,
    }


@pytest.mark.parametrize("fmt", ["xgboost-json", "xgboost-ubj", "lightgbm-text"])
def test_a_native_model_is_registered_served_and_explained_like_any_other(
    client: TestClient, auth: Any, data_repo: DataRepo, settings: Any, fmt: str
) -> None:
    frame = _frame(data_repo)
    content = _upload(fmt, frame, names=NUMERIC if fmt == "lightgbm-text" else None)
    scientist, admin = auth(Role.data_scientist), auth(Role.admin)
    model = fmt.replace("-", "")
    registered = client.post(
        f"/api/v1/models/{model}/versions", headers=scientist, json=_body(data_repo, fmt, content)
    )
    assert registered.status_code == 201, registered.text
    version = registered.json()["version"]
    lineage = client.get(
        f"/api/v1/models/{model}/versions/{version}/lineage", headers=scientist
    ).json()["lineage"]
    assert lineage["source"] == "external"
    assert lineage["estimator"]["class"].split(".")[0] in {"xgboost", "lightgbm"}
    kept = lineage["artifact"]["uploaded"]
    assert kept == {
        "format": fmt,
        "sha256": hashlib.sha256(content).hexdigest(),
        "size_bytes": len(content),
    }
    store = ArtifactStore(settings.artifacts)
    assert store.get(kept["sha256"]) == content, "the upload is kept in its own format"
    documented = client.get(
        f"/api/v1/models/{model}/versions/{version}/technical-documentation", headers=scientist
    ).json()
    design = next(s for s in documented["sections"] if s["key"] == "design")
    assert design["status"] == "partly" and "its uploader declared" in design["missing"][0]

    serve_live(client, admin, model, model, version)
    row = frame.iloc[5]
    decided = client.post(
        f"/api/v1/endpoints/{model}/predict",
        headers=auth(Role.predictor),
        json={"features": {n: float(row[n]) for n in NUMERIC}, "context": {"sex": row["sex"]}},
    )
    assert decided.status_code == 200, decided.text
    x = np.array([[float(row[n]) for n in NUMERIC]])
    if fmt.startswith("xgboost"):
        library = xgboost.XGBClassifier()
        library.load_model(bytearray(content))
        expected = float(library.predict_proba(x)[0, 1])
    else:
        expected = float(lightgbm.Booster(model_str=content.decode()).predict(x)[0])
    assert decided.json()["score"] == pytest.approx(expected, abs=1e-6)
    shap = client.get(
        f"/api/v1/decisions/{decided.json()['decision_id']}/explanations/shap", headers=scientist
    )
    assert shap.status_code == 200, shap.text
    explained = shap.json()
    assert "TreeExplainer" in explained["method"] and explained["space"] == "log_odds"
    assert set(explained["values"]) == set(NUMERIC)
    assert explained["additivity_error"] < 1e-4


def test_a_native_model_that_does_not_fit_its_declaration_is_refused_naming_the_field(
    client: TestClient, auth: Any, data_repo: DataRepo
) -> None:
    frame = _frame(data_repo)
    xgb = _upload("xgboost-json", frame)
    named = _upload("lightgbm-text", frame, names=NUMERIC)
    cases: list[tuple[dict[str, Any], str, str]] = [
        (
            _body(
                data_repo,
                "xgboost-json",
                xgb,
                features=[
                    *[{"name": n, "type": "numeric"} for n in NUMERIC],
                    {"name": "purpose", "type": "categorical"},
                ],
            ),
            "features",
            "categorical",
        ),
        (
            _body(
                data_repo,
                "xgboost-json",
                xgb,
                features=[{"name": n, "type": "numeric"} for n in NUMERIC[:3]],
            ),
            "features",
            "takes 4 features; 3 are declared",
        ),
        (
            _body(
                data_repo,
                "lightgbm-text",
                named,
                features=[{"name": n, "type": "numeric"} for n in reversed(NUMERIC)],
            ),
            "features",
            "in that order",
        ),
        (_body(data_repo, "xgboost-json", b"not a model"), "artifact", "not an XGBoost JSON"),
        (_body(data_repo, "xgboost-ubj", b"\x00\x01garbage"), "artifact", "not a readable"),
        (_body(data_repo, "lightgbm-text", b"tree\nnonsense"), "artifact", "not a readable"),
    ]
    for body, field, words in cases:
        response = client.post(
            "/api/v1/models/native/versions", headers=auth(Role.data_scientist), json=body
        )
        assert response.status_code == 422, (words, response.text)
        error = response.json()["error"]
        assert words in response.text, (words, response.text)
        assert field in [d["field"] for d in error["details"]], error
