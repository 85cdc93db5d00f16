"""Importing MLflow model versions (``lineage.mlflow_import``), against a real tracking server
started by the tests, with models logged by the real MLflow client: XGBoost, LightGBM and a
scikit-learn Pipeline, each with its run's lineage, served, explained and rebuilt
``identical``; and every refusal a new user can meet."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from core.auth.models import Role
from lineage.synthetic import FEATURES
from tests.support.factories import DataRepo, applicant, client_with, rebuilt, serve_live
from tests.support.mlflow_server import tracking_server

NUMERIC = [f for f in FEATURES if f not in ("purpose", "housing")]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
DESCRIBE: dict[str, Any] = {
    "description": "Probability that a loan applicant repays",
    "target": {"column": "repaid", "positive_class": 1},
    "protected": [{"name": "sex", "type": "categorical"}],
}


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with tracking_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


def _book(data: DataRepo) -> tuple[str, pd.DataFrame]:
    path = str(Path(data.repo) / data.path)
    return path, pd.read_csv(path)


def _log(
    uri: str,
    name: str,
    kind: str,
    frame: pd.DataFrame,
    source: str,
    *,
    params: bool = True,
    serialization: str = "skops",
    experiment: str = "credit",
) -> str:
    """What a data scientist does: train, log params, metrics, the dataset input and the
    model, and register it. Returns the run id."""
    import mlflow
    from sklearn.metrics import roc_auc_score

    mlflow.set_tracking_uri(uri)
    # MLflow keeps one dataset per (name, digest) in an experiment, whatever its source
    mlflow.set_experiment(experiment)
    x, y = frame[NUMERIC], frame["repaid"]
    with mlflow.start_run() as run:
        mlflow.set_tag("mlflow.source.git.commit", COMMIT)
        dataset = mlflow.data.from_pandas(frame, source=source, targets="repaid", name="loans")
        mlflow.log_input(dataset, context="training")
        if kind == "xgboost":
            import xgboost

            model: Any = xgboost.XGBClassifier(
                n_estimators=40, max_depth=3, random_state=7, n_jobs=1, tree_method="hist"
            ).fit(x, y)
        elif kind == "lightgbm":
            import lightgbm

            model = lightgbm.LGBMClassifier(
                n_estimators=40,
                num_leaves=15,
                random_state=7,
                n_jobs=1,
                deterministic=True,
                force_row_wise=True,
                verbose=-1,
            ).fit(x, y)
        else:
            from sklearn.ensemble import HistGradientBoostingClassifier
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            model = make_pipeline(
                StandardScaler(), HistGradientBoostingClassifier(max_iter=30, random_state=7)
            ).fit(x, y)
        if params:
            if kind == "sklearn":
                mlflow.log_param("random_state", 7)
            else:
                mlflow.log_params(model.get_params())
        mlflow.log_metric("train_auc", float(roc_auc_score(y, model.predict_proba(x)[:, 1])))
        example = x.head(3)
        if kind == "xgboost":
            # xgboost 3.0's XGBClassifier.save_model needs scikit-learn < 1.6: log its Booster
            mlflow.xgboost.log_model(
                model.get_booster(),
                name="model",
                model_format="json",
                registered_model_name=name,
                input_example=example,
                pip_requirements=["xgboost"],
            )
        elif kind == "lightgbm":
            mlflow.lightgbm.log_model(
                model,
                name="model",
                registered_model_name=name,
                input_example=example,
                pip_requirements=["lightgbm"],
            )
        else:
            mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=name,
                input_example=example,
                serialization_format=serialization,
                # the trainer trusts their own trees; govern checks them anyway on import
                skops_trusted_types=[
                    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
                ],
                pip_requirements=["scikit-learn"],
            )
    return str(run.info.run_id)


def _register_data(client: TestClient, auth: Any, data: DataRepo) -> None:
    response = client.post(
        "/api/v1/datasets",
        headers=auth(Role.data_scientist),
        json={"name": "loans", "repo": str(data.repo), "path": data.path, "rev": data.commits[-1]},
    )
    assert response.status_code in (200, 201), response.text


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm", "sklearn"])
def test_an_mlflow_model_is_imported_with_its_run_explained_and_rebuilt_identical(
    settings: Any,
    auth: Any,
    data_repo: DataRepo,
    mlflow_uri: str,
    kind: str,
    request: pytest.FixtureRequest,
) -> None:
    if kind != "xgboost":
        # Reading a flavour's file and re-running its recipe do not touch the database; the
        # registration they end in is the same for every flavour, and xgboost runs on both.
        request.getfixturevalue("sqlite_only")
    path, frame = _book(data_repo)
    name = f"credit-{kind}-{uuid.uuid4().hex[:8]}"  # one tracking server serves every test
    run_id = _log(mlflow_uri, name, kind, frame, path)
    with client_with(settings, mlflow_tracking_uris=[mlflow_uri]) as client:
        _register_data(client, auth, data_repo)
        scientist, admin = auth(Role.data_scientist), auth(Role.admin)
        imported = client.post(
            "/api/v1/imports/mlflow",
            headers=scientist,
            json={
                "tracking_uri": mlflow_uri,
                "model": name,
                "version": 1,
                "describe": DESCRIBE,
            },
        )
        assert imported.status_code == 201, imported.text
        version = imported.json()["version"]
        lineage = client.get(
            f"/api/v1/models/{name}/versions/{version}/lineage", headers=scientist
        ).json()["lineage"]
        record = lineage["mlflow"]
        assert lineage["source"] == "mlflow" and record["run_id"] == run_id
        assert record["flavour"] == kind and record["git_commit"] == COMMIT
        assert "train_auc" in record["metrics"] and 0.5 < record["metrics"]["train_auc"] <= 1
        assert lineage["seeds"] == {"random_state": 7}
        check = record["data_verification"]
        assert check["status"] == "verified", check
        assert check["govern_digest"] == record["datasets"][0]["digest"]
        assert lineage["dataset"]["commit"] == data_repo.commits[-1]
        assert lineage["environment"]["captured_by"] == "mlflow"
        expected_format = {"xgboost": "xgboost-json", "lightgbm": "lightgbm-text"}.get(kind)
        assert record["artifact_format"] == (expected_format or "skops")
        if expected_format:
            assert lineage["artifact"]["uploaded"]["format"] == expected_format
        # govern scored it itself, on every row of the data version: its training rows
        assert lineage["metrics"]["all_rows"]["n"] == len(frame)
        assert "in-sample" in lineage["metrics"]["note"]

        serve_live(client, admin, name, name, version)
        decided = client.post(
            f"/api/v1/endpoints/{name}/predict",
            headers=auth(Role.predictor),
            json={"features": {k: applicant()[k] for k in NUMERIC}, "context": {"sex": "F"}},
        )
        assert decided.status_code == 200, decided.text
        decision = decided.json()["decision_id"]
        shap = client.get(f"/api/v1/decisions/{decision}/explanations/shap", headers=scientist)
        assert shap.status_code == 200, shap.text
        assert shap.json()["additivity_error"] < 1e-4
        assert set(shap.json()["values"]) == set(NUMERIC)

        rebuild = rebuilt(client, scientist, name, version)
        assert rebuild["status"] == "succeeded", rebuild
        report = rebuild["report"]
        assert rebuild["verdict"] == "identical", report
        assert report["recipe"]["rows"] == len(frame)
        if expected_format:
            assert report["artifact"]["bytes_identical"] is True
        else:
            assert report["artifact"]["fingerprint_identical"] is True


def test_the_cli_imports_and_an_unverified_dataset_is_said_and_not_rebuilt(
    env_settings: Any, auth: Any, data_repo: DataRepo, mlflow_uri: str, tmp_path: Path
) -> None:
    """The run logged a sample of the book, not the book: govern links the data version the
    description names, but says it is unverified, and will not claim to rebuild it."""
    import yaml

    from governance.cli import app

    settings = env_settings
    path, frame = _book(data_repo)
    sample = f"credit-sample-{uuid.uuid4().hex[:8]}"
    _log(mlflow_uri, sample, "xgboost", frame.head(900), path)
    describe = tmp_path / "describe.yaml"
    dataset = {"name": "loans", "repo": str(data_repo.repo), "path": data_repo.path}
    describe.write_text(
        yaml.safe_dump({**DESCRIBE, "dataset": {**dataset, "rev": data_repo.commits[-1]}})
    )
    arguments = ["import", "mlflow", "--tracking-uri", mlflow_uri, "--model", sample]
    result = CliRunner().invoke(app, [*arguments, "--version", "1", "--describe", str(describe)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "Downloading artifacts" not in said, "MLflow's own progress bars stay quiet"
    assert "unverified: the declared data version loans" in said, result.output
    with client_with(settings) as client:
        headers = auth(Role.data_scientist)
        lineage = client.get(f"/api/v1/models/{sample}/versions/1/lineage", headers=headers).json()[
            "lineage"
        ]
        assert lineage["mlflow"]["data_verification"]["status"] == "unverified"
        rebuild = rebuilt(client, headers, sample, 1)
        assert rebuild["verdict"] == "failed", rebuild
        assert rebuild["report"]["reason"]["code"] == "not_rebuildable", rebuild
        assert "unverified" in rebuild["report"]["reason"]["message"]


def test_what_govern_refuses_to_import_and_why(
    settings: Any, auth: Any, data_repo: DataRepo, mlflow_uri: str
) -> None:
    path, frame = _book(data_repo)
    tag = uuid.uuid4().hex[:8]
    pickled, noseed, elsewhere = (f"credit-{k}-{tag}" for k in ("pickle", "noseed", "elsewhere"))
    _log(mlflow_uri, pickled, "sklearn", frame, path, serialization="cloudpickle")
    _log(mlflow_uri, noseed, "xgboost", frame, path, params=False)
    _log(mlflow_uri, elsewhere, "xgboost", frame, "/nowhere/loans.csv", experiment="b")
    headers = auth(Role.data_scientist)

    def ask(client: TestClient, **body: Any) -> Any:
        return client.post(
            "/api/v1/imports/mlflow",
            headers=headers,
            json={"tracking_uri": mlflow_uri, "version": 1, "describe": DESCRIBE, **body},
        )

    with client_with(settings) as client:  # no tracking server allowed
        refused = ask(client, model=pickled)
        assert refused.status_code == 422
        assert refused.json()["error"]["details"][0]["field"] == "tracking_uri"
    with client_with(settings, mlflow_tracking_uris=[mlflow_uri, "http://127.0.0.1:9"]) as client:
        _register_data(client, auth, data_repo)
        cases = {
            pickled: ("version", "cloudpickle"),
            noseed: ("describe.seeds", "seed"),
            elsewhere: ("describe.dataset", "not a file govern tracks"),
            "credit-missing": ("version", "has no model"),
        }
        for model, (field, words) in cases.items():
            answer = ask(client, model=model)
            assert answer.status_code == 422, (model, answer.text)
            detail = answer.json()["error"]["details"][0]
            assert detail["field"] == field and words in detail["message"], (model, detail)
        assert client.get(f"/api/v1/models/{pickled}", headers=headers).status_code == 404
        down = ask(client, model=pickled, tracking_uri="http://127.0.0.1:9")
        assert down.status_code == 502 and "127.0.0.1:9" in down.json()["error"]["message"]
        assert ask(client, model="credit-x", describe={"target": {}}).status_code == 422
        assert (
            client.post(
                "/api/v1/imports/mlflow",
                headers=auth(Role.compliance),
                json={"tracking_uri": mlflow_uri, "model": "x", "version": 1, "describe": DESCRIBE},
            ).status_code
            == 403
        )
