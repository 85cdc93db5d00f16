from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shap
import sqlalchemy as sa
from dvc.api import read as dvc_read
from fastapi.testclient import TestClient
from scipy.stats import beta as scipy_beta
from sklearn.model_selection import train_test_split

from core.audit.models import AccessRecord
from core.auth.models import Role
from core.db import session_factory, transaction
from explain.models import Explanation
from governance.app import create_app
from governance.audit import verification as audit_service
from lineage import registry
from lineage import service as lineage_service
from lineage.artifacts import ArtifactStore
from lineage.input_schema import InputSchema, frame_from_table, positive_proba, to_frame
from lineage.pipeline import output_features
from serving.models import DecisionRecord
from tests.conftest import Served
from tests.support.factories import applicant, promote

DENIED = applicant(
    income=21000.0,
    debt_to_income=0.55,
    late_payments=4,
    credit_history_months=14,
    employment_years=0.5,
    loan_amount=30000.0,
)
APPROVED = applicant(
    income=120000.0,
    debt_to_income=0.08,
    late_payments=0,
    credit_history_months=240,
    employment_years=15.0,
    loan_amount=5000.0,
)
DECISIONS = DecisionRecord.__table__
ACCESS = AccessRecord.__table__
IMMUTABLE = {"credit_history_months", "late_payments", "housing"}
VOLATILE = {"cached", "computed_at", "compute_ms"}


def _decide(client: TestClient, auth, features: dict[str, Any], **extra: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/endpoints/credit/predict",
        headers=auth(Role.predictor),
        json={"features": features, "context": {"sex": "F", "age": 52}, **extra},
    )
    assert response.status_code == 200, response.text
    return response.json()


def _get(client: TestClient, headers, decision_id: str, what: str, **params: Any):
    path = (
        f"/api/v1/decisions/{decision_id}/reasons"
        if what == "reasons"
        else f"/api/v1/decisions/{decision_id}/explanations/{what}"
    )
    return client.get(path, headers=headers, params=params)


def _version(settings, name: str, version: int):
    factory = session_factory(sa.create_engine(settings.database_url))
    with transaction(factory) as session:
        _m, found = registry.get_version(session=session, name=name, version=version)
        dataset = lineage_service.get_dataset(session=session, dataset_id=found.dataset_version_id)
        session.expunge_all()
    return found, dataset


def _pipeline(settings, sha256: str):
    return ArtifactStore(settings.artifacts).load_model(sha256)


@pytest.fixture
def denied(client: TestClient, auth, served: Served) -> dict[str, Any]:
    answer = _decide(client, auth, DENIED, subject_id="appeal-1")
    assert answer["label"] == 0, answer
    return answer


def test_shap_agrees_with_shap_called_directly_and_is_additive(
    client: TestClient, auth, denied, settings
) -> None:
    response = _get(client, auth(Role.appeals), denied["decision_id"], "shap")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["space"] == "log_odds"
    assert body["method"].startswith("shap.TreeExplainer")
    assert set(body["values"]) == set(DENIED)
    assert body["additivity_error"] < 1e-6
    assert body["versions"]["shap"] == shap.__version__

    pipeline = _pipeline(settings, denied["model"]["sha256"])
    version, _dataset = _version(settings, "credit", denied["model"]["version"])
    schema = InputSchema.from_document(version.input_schema)
    xt = pipeline.named_steps["preprocess"].transform(to_frame(schema, [DENIED]))
    direct = shap.TreeExplainer(pipeline.named_steps["model"]).shap_values(xt)[0]
    expected: dict[str, float] = {}
    for owner, value in zip(output_features(pipeline), direct, strict=True):
        expected[owner] = expected.get(owner, 0.0) + float(value)
    for name, value in expected.items():
        assert body["values"][name] == pytest.approx(value, abs=1e-6), name
    margin = float(pipeline.named_steps["model"].decision_function(xt)[0])
    assert body["output"] == pytest.approx(margin, abs=1e-9)
    assert body["base_value"] + sum(body["values"].values()) == pytest.approx(margin, abs=1e-6)


def test_every_explanation_is_stored_and_a_recomputation_is_identical(
    client: TestClient, auth, denied, engine: sa.Engine
) -> None:
    headers = auth(Role.data_scientist)
    decision_id = denied["decision_id"]
    first = {}
    for what, params in (
        ("shap", {}),
        ("anchor", {"threshold": 0.9}),
        ("counterfactual", {"k": 2}),
    ):
        a = _get(client, headers, decision_id, what, **params)
        b = _get(client, headers, decision_id, what, **params)
        assert a.status_code == b.status_code == 200, a.text
        assert a.json()["cached"] is False and b.json()["cached"] is True
        assert {k: v for k, v in a.json().items() if k not in VOLATILE} == {
            k: v for k, v in b.json().items() if k not in VOLATILE
        }
        first[what] = (params, a.json())
    table = Explanation.__table__
    with engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 3
        conn.execute(table.delete())
    for what, (params, before) in first.items():
        again = _get(client, headers, decision_id, what, **params).json()
        assert again["cached"] is False
        assert {k: v for k, v in again.items() if k not in VOLATILE} == {
            k: v for k, v in before.items() if k not in VOLATILE
        }, what


def _training_rows(settings, data_repo, version) -> pd.DataFrame:
    """The model's training rows, read independently: DVC API, then the recorded split."""
    dataset = version.lineage["dataset"]
    raw = dvc_read(dataset["path"], repo=dataset["repo"], rev=dataset["commit"], mode="rb")
    frame = (
        pd.read_csv(io.BytesIO(raw))
        if dataset["format"] == "csv"
        else pd.read_parquet(io.BytesIO(raw))
    )
    spec = version.lineage["spec"]
    y = (
        frame[spec["target"]["column"]].astype(str) == str(spec["target"]["positive_class"])
    ).to_numpy()
    train_idx, _ = train_test_split(
        np.arange(len(frame)),
        test_size=spec["validation"]["fraction"],
        random_state=spec["seeds"]["split"],
        stratify=y if spec["validation"]["stratify"] else None,
    )
    return frame.iloc[np.sort(train_idx)]


def test_anchor_precision_is_measured_on_the_training_rows_and_met_only_with_support(
    client: TestClient, auth, denied, settings, data_repo
) -> None:
    threshold = 0.95
    others = [
        _decide(client, auth, applicant(income=income, debt_to_income=dti))
        for income, dti in ((45_000.0, 0.35), (80_000.0, 0.12), (30_000.0, 0.25))
    ]
    version, _ = _version(settings, "credit", denied["model"]["version"])
    train = _training_rows(settings, data_repo, version)
    pipeline = _pipeline(settings, denied["model"]["sha256"])
    schema = InputSchema.from_document(version.input_schema)
    scores = positive_proba(pipeline, frame_from_table(schema, train[schema.feature_names]), schema)
    labels = (scores >= schema.threshold).astype(int)
    met = 0
    for decision in [denied, *others]:
        response = _get(
            client, auth(Role.appeals), decision["decision_id"], "anchor", threshold=threshold
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["explained_row_in_training"] is False
        mask = np.ones(len(train), dtype=bool)
        for condition in body["conditions"]:
            column = train[condition["feature"]]
            if "equals" in condition:
                mask &= column.astype(str).to_numpy() == condition["equals"]
            else:
                if condition["above"] is not None:
                    mask &= column.to_numpy(float) > condition["above"]
                if condition["at_most"] is not None:
                    mask &= column.to_numpy(float) <= condition["at_most"]
        rows = int(mask.sum())
        hits = int((labels[mask] == decision["label"]).sum())
        assert body["coverage_rows"] == body["training_rows"]["matching"] == rows
        assert body["training_rows"]["total"] == len(train)
        assert len(body["rule"].split(" AND ")) == len(body["conditions"])
        if rows:
            lower = float(scipy_beta.ppf(0.05, hits, rows - hits + 1)) if hits else 0.0
            assert body["precision"] == pytest.approx(hits / rows)
            assert body["precision_lower_bound"] == pytest.approx(lower, abs=1e-12)
        # "met" needs the support and a 95% lower bound at the threshold, not a point estimate
        meets = rows >= body["min_support"] and body["precision_lower_bound"] >= threshold
        assert body["meets_threshold"] is meets and body["reliable"] is meets, body
        if meets:
            met += 1
            assert body["message"] is None
        else:
            assert body["message"].startswith("no reliable rule"), body
    assert met >= 1  # the clear approvals have a reliable rule


def test_counterfactuals_flip_when_replayed_and_respect_the_spec(
    client: TestClient, auth, denied, settings
) -> None:
    headers = auth(Role.appeals)
    response = _get(client, headers, denied["decision_id"], "counterfactual", k=3)
    assert response.status_code == 200, response.text
    body = response.json()
    found = body["counterfactuals"]
    assert 1 <= len(found) <= 3
    assert body["requested"] == 3 and body["returned"] == len(found)
    assert body["candidates_searched"] == body["searched"] > 0
    assert (body["shortfall_reason"] is None) is (len(found) == 3)
    assert body["constraints"]["protected_never_inputs"] == ["age", "sex"]
    version, _ = _version(settings, "credit", denied["model"]["version"])
    features = {f["name"]: f for f in version.input_schema["features"]}
    distances = [cf["distance"] for cf in found]
    assert distances == sorted(distances)
    assert len({json.dumps(cf["changes"], sort_keys=True) for cf in found}) == len(found)
    for cf in found:
        changes = cf["changes"]
        assert changes and not set(changes) & IMMUTABLE
        assert not set(changes) & {"sex", "age"}
        for name, change in changes.items():
            spec = features[name]
            assert change["from"] == DENIED[name]
            if spec["type"] == "numeric":
                low, high = spec["bounds"]
                assert low <= change["to"] <= high
                if spec["direction"] == "increase":
                    assert change["to"] > change["from"]
                if spec["direction"] == "decrease":
                    assert change["to"] < change["from"]
            else:
                assert change["to"] in spec["categories"]
        plausibility = cf["plausibility"]
        assert plausibility["nearest_target_class_distance"] >= 0
        assert 0 <= plausibility["distance_quantile"] <= 1
        replay = client.post(
            f"/api/v1/decisions/{denied['decision_id']}/replay",
            headers=headers,
            json={"overrides": {n: c["to"] for n, c in changes.items()}},
        )
        assert replay.status_code == 200, replay.text
        assert replay.json()["replay"]["label"] == 1 == cf["label"]
        assert replay.json()["replay"]["score"] == cf["score"]


def test_reason_codes_follow_the_shap_contributions(
    client: TestClient, auth, denied, served: Served
) -> None:
    headers = auth(Role.appeals)
    reasons = _get(client, headers, denied["decision_id"], "reasons").json()
    shap_values = _get(client, headers, denied["decision_id"], "shap").json()["values"]
    assert reasons["favourable"] is False
    assert 1 <= len(reasons["reasons"]) <= 4
    against = sorted(((v, n) for n, v in shap_values.items() if v < 0))
    assert [r["feature"] for r in reasons["reasons"]] == [n for _v, n in against[:4]]
    assert [r["rank"] for r in reasons["reasons"]] == list(range(1, len(reasons["reasons"]) + 1))
    for reason in reasons["reasons"]:
        assert reason["feature"] in DENIED
        assert reason["code"] == "R-" + reason["feature"].upper()
        assert reason["text"] and reason["contribution"] > 0
    assert reasons["reasons"][0]["text"] != reasons["reasons"][0]["feature"]

    approved = _decide(client, auth, APPROVED)
    assert approved["label"] == 1
    favourable = _get(client, headers, approved["decision_id"], "reasons").json()
    assert favourable["favourable"] is True and favourable["reasons"] == []
    assert "favourable" in favourable["message"]


def test_replay_reproduces_every_logged_decision_in_a_sample_of_200(
    client: TestClient, auth, served: Served, engine: sa.Engine
) -> None:
    rng = np.random.default_rng(5)
    instances = [
        {
            "subject_id": f"s-{i}",
            "features": applicant(
                income=float(rng.integers(15_000, 150_000)),
                debt_to_income=float(np.round(rng.uniform(0.02, 0.7), 3)),
                late_payments=int(rng.integers(0, 6)),
                loan_amount=float(rng.integers(1_000, 60_000)),
                purpose=str(rng.choice(["car", "home", "education", "business"])),
            ),
        }
        for i in range(200)
    ]
    response = client.post(
        "/api/v1/endpoints/credit/predict",
        headers=auth(Role.predictor),
        json={"instances": instances},
    )
    assert response.status_code == 200, response.text
    decisions = response.json()["decisions"]
    assert {d["label"] for d in decisions} == {0, 1}
    headers = auth(Role.appeals)
    for decision in decisions:
        replay = client.post(f"/api/v1/decisions/{decision['decision_id']}/replay", headers=headers)
        assert replay.status_code == 200, replay.text
        body = replay.json()
        assert body["reproduces_logged_decision"] is True, body
        assert body["replay"]["score"] == decision["score"]
    with engine.connect() as conn:
        kinds = conn.execute(
            sa.select(DECISIONS.c.kind, sa.func.count()).group_by(DECISIONS.c.kind)
        ).all()
        replays = conn.execute(
            sa.select(sa.func.count()).where(ACCESS.c.action == "replay")
        ).scalar()
    assert dict(kinds) == {"decision": 200}
    assert replays == 200


def test_replay_with_overrides_scores_the_change_and_names_bad_fields(
    client: TestClient, auth, denied
) -> None:
    headers = auth(Role.appeals)
    path = f"/api/v1/decisions/{denied['decision_id']}/replay"
    changed = client.post(path, headers=headers, json={"overrides": {"income": 250000.0}})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["overrides"] == {"income": {"from": DENIED["income"], "to": 250000.0}}
    assert body["reproduces_logged_decision"] is None
    assert body["replay"]["score"] > denied["score"]
    bad = client.post(
        path, headers=headers, json={"overrides": {"incme": 1, "debt_to_income": "lots"}}
    )
    assert bad.status_code == 422
    fields = {d["field"] for d in bad.json()["error"]["details"]}
    assert fields == {"overrides.incme", "overrides.debt_to_income"}


def test_an_archived_version_still_explains_and_a_tampered_artifact_is_refused(
    client: TestClient, auth, denied, settings
) -> None:
    admin = auth(Role.admin)
    version = denied["model"]["version"]
    client.put(
        "/api/v1/endpoints/credit",
        headers=admin,
        json={"routes": [{"model": "credit", "version": 2}]},
    )
    archived = client.post(
        f"/api/v1/models/credit/versions/{version}/stage",
        headers=admin,
        json={"stage": "archived", "reason": "replaced by v2"},
    )
    assert archived.status_code == 201, archived.text
    shap_body = _get(client, admin, denied["decision_id"], "shap")
    assert shap_body.status_code == 200, shap_body.text

    path = Path(ArtifactStore(settings.artifacts).path_for(denied["model"]["sha256"]))
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes() + b"tampered")
    with TestClient(create_app(settings), raise_server_exceptions=False) as fresh:
        refused = fresh.get(
            f"/api/v1/decisions/{denied['decision_id']}/explanations/counterfactual",
            headers=admin,
        )
        replay = fresh.post(f"/api/v1/decisions/{denied['decision_id']}/replay", headers=admin)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "artifact_tampered"
    assert "refusing to load it" in refused.json()["error"]["message"]
    assert replay.status_code == 409


def test_unknown_ids_rejected_requests_and_roles(
    client: TestClient, auth, denied, engine: sa.Engine
) -> None:
    appeals = auth(Role.appeals)
    unknown = "00000000-0000-4000-8000-000000000000"
    for what in ("shap", "anchor", "counterfactual", "reasons"):
        assert _get(client, appeals, unknown, what).status_code == 404
        assert _get(client, appeals, "not-a-uuid", what).status_code == 422
    assert client.post(f"/api/v1/decisions/{unknown}/replay", headers=appeals).status_code == 404

    rejected = client.post(
        "/api/v1/endpoints/credit/predict",
        headers=auth(Role.predictor),
        json={"features": {**DENIED, "income": "a lot"}},
    )
    assert rejected.status_code == 422
    rejection_id = rejected.json()["error"]["details"]["rejection_id"]
    refused = _get(client, appeals, rejection_id, "shap")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_a_decision"

    for role in (Role.predictor,):
        assert _get(client, auth(role), denied["decision_id"], "shap").status_code == 403
        assert (
            client.post(
                f"/api/v1/decisions/{denied['decision_id']}/replay", headers=auth(role)
            ).status_code
            == 403
        )
    bad_k = _get(client, appeals, denied["decision_id"], "counterfactual", k=50)
    assert bad_k.status_code == 422 and "k" in json.dumps(bad_k.json())


def test_every_read_is_in_the_access_trail_and_the_chain_verifies(
    client: TestClient, auth, denied, engine: sa.Engine, make_key
) -> None:
    key = make_key(Role.appeals, name="appeals-tool")
    headers = {"Authorization": f"Bearer {key}"}
    decision_id = denied["decision_id"]
    assert client.get(f"/api/v1/decisions/{decision_id}", headers=headers).status_code == 200
    for what in ("shap", "reasons"):
        assert _get(client, headers, decision_id, what).status_code == 200
    assert (
        client.post(f"/api/v1/decisions/{decision_id}/replay", headers=headers).status_code == 200
    )
    with engine.connect() as conn:
        rows = conn.execute(sa.select(AccessRecord).order_by(AccessRecord.seq)).all()
    assert [r.action for r in rows] == [
        "decision.read",
        "explanation.shap",
        "explanation.reasons",
        "replay",
    ]
    assert {r.target for r in rows} == {decision_id}
    assert {r.role for r in rows} == {"appeals"}
    assert len({r.key_id for r in rows}) == 1
    with transaction(session_factory(engine)) as session:
        report = audit_service.verify_chain(session, "access")
    assert report.ok and report.checked == 4
    with engine.begin() as conn:
        conn.execute(
            sa.update(AccessRecord).where(AccessRecord.seq == 2).values(target="someone-else")
        )
    with transaction(session_factory(engine)) as session:
        report = audit_service.verify_chain(session, "access")
    assert not report.ok


def test_a_linear_model_gets_seeded_model_agnostic_shap_that_repeats_exactly(
    client: TestClient, auth, settings, data_repo, engine: sa.Engine
) -> None:
    from tests.support.factories import cached_model

    version = cached_model(
        settings,
        data_repo,
        seed=7,
        model="credit-lr",
        estimator={"class": "sklearn.linear_model.LogisticRegression", "params": {}},
    )
    admin = auth(Role.admin)
    promote(client, admin, "credit-lr", version)
    put = client.put(
        "/api/v1/endpoints/lr",
        headers=admin,
        json={"routes": [{"model": "credit-lr", "version": version}]},
    )
    assert put.status_code == 200, put.text
    decided = client.post(
        "/api/v1/endpoints/lr/predict", headers=auth(Role.predictor), json={"features": DENIED}
    ).json()
    first = _get(client, admin, decided["decision_id"], "shap").json()
    assert first["method"].startswith("shap.PermutationExplainer")
    assert first["space"] == "log_odds" and first["seed"] == 0
    assert first["additivity_error"] < 1e-6
    with engine.begin() as conn:
        conn.execute(Explanation.__table__.delete())
    again = _get(client, admin, decided["decision_id"], "shap").json()
    assert again["cached"] is False and again["values"] == first["values"]
    other_seed = _get(client, admin, decided["decision_id"], "shap", seed=1).json()
    assert other_seed["seed"] == 1 and other_seed["values"] != first["values"]
    assert other_seed["additivity_error"] < 1e-6
