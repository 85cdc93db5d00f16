from __future__ import annotations

import base64
import pickle

import pytest
import skops.io as sio
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from governance.auth.models import Role
from governance.config import Settings
from lineage.artifacts import ArtifactStore
from lineage.capture import TrainingCapture
from lineage.fingerprint import fingerprint
from tests.support.factories import DataRepo

FEATURES = [
    {"name": "income", "type": "numeric", "description": "Income too low"},
    {"name": "debt_to_income", "type": "numeric"},
    {"name": "purpose", "type": "categorical"},
]
TARGET = {"column": "repaid", "positive_class": 1}


def _fit(frame):
    pipeline = Pipeline(
        [
            (
                "pre",
                ColumnTransformer(
                    [
                        ("num", "passthrough", ["income", "debt_to_income"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["purpose"]),
                    ]
                ),
            ),
            ("model", RandomForestClassifier(n_estimators=20, random_state=5)),
        ]
    )
    return pipeline.fit(frame[["income", "debt_to_income", "purpose"]], frame["repaid"])


def _capture(data_repo: DataRepo) -> TrainingCapture:
    dataset = {
        "name": "loans",
        "repo": str(data_repo.repo),
        "path": data_repo.path,
        "rev": data_repo.commits[0],
    }
    return TrainingCapture(dataset=dataset, seeds={"estimator": 5, "global": 1})


def test_register_a_pipeline_trained_elsewhere(
    client: TestClient, auth, data_repo: DataRepo, settings: Settings
) -> None:
    capture = _capture(data_repo)
    with capture:
        frame = capture.read_data()
        pipeline = _fit(frame)
    key = auth(Role.data_scientist)["Authorization"].split()[1]
    version = capture.register(
        pipeline,
        model="credit-ext",
        api_key=key,
        client=client,
        target=TARGET,
        features=FEATURES,
        protected=[{"name": "sex"}],
        gate={"metric": "roc_auc", "threshold": 0.55},
    )
    assert version["version"] == 1
    assert version["source"] == "external"
    assert version["fingerprint"] == fingerprint(pipeline)
    assert version["input_schema"]["features"][2]["categories"] == [
        "business",
        "car",
        "education",
        "home",
        "personal",
    ]

    lineage = client.get(
        "/api/v1/models/credit-ext/versions/1/lineage", headers=auth(Role.compliance)
    ).json()["lineage"]
    assert lineage["seeds"] == {"estimator": 5, "global": 1}
    assert lineage["dataset"]["commit"] == data_repo.commits[0]
    assert lineage["estimator"]["class"] == "sklearn.ensemble._forest.RandomForestClassifier"
    assert lineage["estimator"]["params"]["n_estimators"] == 20
    assert lineage["environment"]["packages"]["scikit-learn"]
    assert lineage["timing"]["duration_s"] >= 0
    assert lineage["gate"]["passed"] is True
    assert set(lineage["metrics_by_group"]) == {"sex"}

    stored = ArtifactStore(settings.artifacts).load_model(version["artifact_sha256"])
    probe = frame.head(20)[["income", "debt_to_income", "purpose"]]
    assert (stored.predict_proba(probe) == pipeline.predict_proba(probe)).all()


@pytest.mark.parametrize(("drop", "missing"), [("dataset", "dataset"), ("seeds", "seeds")])
def test_lineage_is_required(
    client: TestClient, auth, data_repo: DataRepo, drop: str, missing: str
) -> None:
    capture = _capture(data_repo)
    with capture:
        pipeline = _fit(capture.read_data())
    body = capture.payload(pipeline, target=TARGET, features=FEATURES)
    body[drop] = {} if drop == "seeds" else None
    response = client.post(
        "/api/v1/models/x/versions", headers=auth(Role.data_scientist), json=body
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert f"{missing} missing" in error["message"]
    assert [d["field"] for d in error["details"]] == [missing]


def test_capture_refuses_missing_lineage() -> None:
    with pytest.raises(ValueError, match="seeds are required"):
        TrainingCapture(dataset={"id": 1}, seeds={})
    with pytest.raises(ValueError, match="dataset is required"):
        TrainingCapture(dataset={}, seeds={"a": 1})


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickles_and_untrusted_types_are_refused(
    client: TestClient, auth, data_repo: DataRepo
) -> None:
    capture = _capture(data_repo)
    with capture:
        pipeline = _fit(capture.read_data())
    body = capture.payload(pipeline, target=TARGET, features=FEATURES)
    body["artifact"]["content_base64"] = base64.b64encode(pickle.dumps(Evil())).decode()
    response = client.post(
        "/api/v1/models/x/versions", headers=auth(Role.data_scientist), json=body
    )
    assert response.status_code == 422
    assert "skops" in response.json()["error"]["message"]

    body["artifact"]["content_base64"] = base64.b64encode(sio.dumps({"f": Evil})).decode()
    response = client.post(
        "/api/v1/models/x/versions", headers=auth(Role.data_scientist), json=body
    )
    assert response.status_code == 422
    assert "does not load" in response.json()["error"]["message"]

    body["artifact"]["content_base64"] = "not base64!!"
    assert (
        client.post(
            "/api/v1/models/x/versions", headers=auth(Role.data_scientist), json=body
        ).status_code
        == 422
    )


def test_only_data_scientists_upload(client: TestClient, auth) -> None:
    assert (
        client.post("/api/v1/models/x/versions", headers=auth(Role.compliance), json={}).status_code
        == 403
    )
