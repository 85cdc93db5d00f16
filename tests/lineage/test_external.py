from __future__ import annotations

import base64
import pickle
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from core.auth.models import Role
from core.config import Settings
from lineage.artifacts import ArtifactStore
from lineage.capture import TrainingCapture
from lineage.fingerprint import fingerprint
from lineage.safe_skops import UnreadableArtifact, load_trusted, read_schema, untrusted_types
from lineage.spec import ESTIMATORS, import_estimator
from lineage.synthetic import generate_loans
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


# Uploads that would run code (issue 16) ----------------------------------------------------------


def _code_running_pipeline(expression: str, fitted_on) -> Pipeline:
    """The reviewed attack: FunctionTransformer steps that turn any input into ``eval(expr)``."""
    model = LogisticRegression().fit(fitted_on[["income"]], fitted_on["repaid"])
    return Pipeline(
        [
            (
                "fill",
                FunctionTransformer(
                    np.full_like, kw_args={"fill_value": expression, "dtype": object}
                ),
            ),
            ("flat", FunctionTransformer(np.ravel)),
            ("pick", FunctionTransformer(max)),
            ("run", FunctionTransformer(eval)),
            ("model", model),
        ]
    )


def test_an_upload_that_would_run_code_is_refused_before_anything_is_built(
    client: TestClient, auth, data_repo: DataRepo, tmp_path
) -> None:
    marker = tmp_path / "pwned"
    secret = tmp_path / "secret.key"
    secret.write_text("gov_the-admin-key-must-never-leak")
    capture = _capture(data_repo)
    with capture:
        frame = capture.read_data()
    writes = f"open({str(marker)!r}, 'w').write('pwned')"
    leaks = f"(_ for _ in ()).throw(ValueError(open({str(secret)!r}).read()))"
    headers = auth(Role.data_scientist)
    for expression in (writes, leaks):
        body = capture.payload(
            _code_running_pipeline(expression, frame), target=TARGET, features=FEATURES
        )
        response = client.post("/api/v1/models/evil/versions", headers=headers, json=body)
        assert not marker.exists(), "the upload ran its code"
        assert "the-admin-key" not in response.text
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        refused = {d.get("type") for d in error["details"]}
        assert {"builtins.eval", "builtins.max", "numpy.full_like", "numpy.ravel"} <= refused
        assert "builtins.eval" in error["message"]
    assert client.get("/api/v1/models/evil", headers=headers).status_code == 404


def test_any_function_object_is_refused_even_a_harmless_ufunc(
    client: TestClient, auth, data_repo: DataRepo
) -> None:
    capture = _capture(data_repo)
    with capture:
        frame = capture.read_data()
    pipeline = Pipeline(
        [
            ("log", FunctionTransformer(np.log1p)),
            ("model", LogisticRegression().fit(frame[["income"]], frame["repaid"])),
        ]
    )
    body = capture.payload(pipeline, target=TARGET, features=FEATURES)
    response = client.post(
        "/api/v1/models/ufunc/versions", headers=auth(Role.data_scientist), json=body
    )
    assert response.status_code == 422
    [refused] = [d["type"] for d in response.json()["error"]["details"]]
    assert refused.endswith(".log1p")


def test_a_scoring_failure_does_not_echo_what_the_model_raised(
    client: TestClient, auth, data_repo: DataRepo
) -> None:
    capture = _capture(data_repo)
    with capture:
        frame = capture.read_data()
        pipeline = _fit(frame)
    # Declared features the pipeline never saw: scoring raises inside scikit-learn.
    features = [{"name": "employment_years", "type": "numeric"}, *FEATURES[1:]]
    body = capture.payload(pipeline, target=TARGET, features=features)
    response = client.post(
        "/api/v1/models/mismatch/versions", headers=auth(Role.data_scientist), json=body
    )
    assert response.status_code == 422
    text = response.text
    assert "cannot score the declared features" in text
    assert "income" not in text  # the column the model wanted, named only by scikit-learn


# scikit-learn's own: an XGBoost or LightGBM model holds its library's booster, which skops
# would rebuild from a pickle; those come in their own formats, never through skops.
@pytest.mark.parametrize("estimator", sorted(p for p in ESTIMATORS if p.startswith("sklearn.")))
def test_every_supported_estimator_and_transformer_loads_from_skops(estimator: str) -> None:
    frame = generate_loans(300, seed=3)
    numeric = ["income", "debt_to_income", "late_payments"]
    cls = import_estimator(estimator)
    params = {"n_estimators": 5} if "n_estimators" in cls().get_params() else {}
    for scale, encode in [
        (StandardScaler(), OneHotEncoder(handle_unknown="ignore")),
        (MinMaxScaler(), OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)),
        (RobustScaler(), OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ("passthrough", OneHotEncoder(handle_unknown="ignore")),
    ]:
        numeric_step = (
            "passthrough"
            if scale == "passthrough"
            else Pipeline([("impute", SimpleImputer()), ("scale", scale)])
        )
        pipeline = Pipeline(
            [
                (
                    "preprocess",
                    ColumnTransformer(
                        [("num", numeric_step, numeric), ("cat", encode, ["purpose", "housing"])]
                    ),
                ),
                ("model", cls(**params)),
            ]
        )
        columns = [*numeric, "purpose", "housing"]
        pipeline.fit(frame[columns], frame["repaid"])
        content = sio.dumps(pipeline)
        assert untrusted_types(read_schema(content, 10**9)) == []
        loaded = load_trusted(content, 10**9)
        assert (
            loaded.predict_proba(frame[columns]) == pipeline.predict_proba(frame[columns])
        ).all()


def test_a_skops_file_that_unpacks_beyond_the_bound_is_not_read() -> None:
    content = sio.dumps(StandardScaler().fit(np.zeros((2000, 50))))
    with pytest.raises(UnreadableArtifact, match="unpacks to more than"):
        read_schema(content, 1000)


def test_a_generator_is_rebuilt_only_from_a_real_bit_generator() -> None:
    node = {
        "__module__": "numpy.random._generator",
        "__class__": "Generator",
        "__loader__": "RandomGeneratorNode",
        "content": {
            "bit_generator": {
                "__module__": "builtins",
                "__class__": "dict",
                "__loader__": "DictNode",
                "content": {
                    "bit_generator": {
                        "__module__": "builtins",
                        "__class__": "str",
                        "__loader__": "JsonNode",
                        "content": '"seed"',
                    }
                },
            }
        },
    }
    assert untrusted_types(
        {"__loader__": "ListNode", "__module__": "builtins", "__class__": "list", "content": [node]}
    ) == ["numpy.random.seed"]
    node["content"]["bit_generator"]["content"]["bit_generator"]["content"] = '"PCG64"'
    assert untrusted_types(node) == []


@pytest.mark.parametrize("kind", ["hist_gradient_boosting", "decision_tree"])
def test_a_tree_whose_nodes_point_outside_it_is_refused_before_it_predicts(kind: str) -> None:
    """scikit-learn walks a tree's node arrays without bounds checks when it predicts: a skops
    file that points a child or a feature out of range could crash the process or read memory
    it must not. The untouched model loads; each kind of corruption is refused."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    x = rng.random((300, 4))
    y = (x[:, 0] + x[:, 1] > 1).astype(int)
    if kind == "decision_tree":
        fitted: Any = DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, y)
    else:
        fitted = HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(x, y)
    assert load_trusted(sio.dumps(fitted), 10**9).predict(x).tolist() == fitted.predict(x).tolist()

    corruptions = {
        "left": 10**6,  # a child beyond the array
        "right": 0,  # a child before its parent: a walk that never ends
        "feature": 99,  # a feature the model does not have
    }
    for field_name, value in corruptions.items():
        model = pickle.loads(pickle.dumps(fitted))
        if kind == "decision_tree":
            state = model.tree_.__getstate__()
            nodes = state["nodes"].copy()
            column = {"left": "left_child", "right": "right_child", "feature": "feature"}
            nodes[column[field_name]][0] = value
            model.tree_.__setstate__({**state, "nodes": nodes})
        else:
            nodes = model._predictors[0][0].nodes
            nodes[{"feature": "feature_idx"}.get(field_name, field_name)][0] = value
        with pytest.raises(UnreadableArtifact, match=r"outside the tree|feature the model lacks"):
            load_trusted(sio.dumps(model), 10**9)
