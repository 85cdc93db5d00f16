"""The data shapes of real loan books (issue 17, section 2), on a loan book shaped like a
lender's export (``lineage.loanbook``): integer-coded categories, missing values, a feature
audited as protected, validated context values, value labels, proxies, YAML's booleans."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from core.auth.models import Role
from core.errors import InvalidInput
from lineage.spec import parse_spec
from serving.models import DecisionRecord
from tests.conftest import Served
from tests.support.factories import DataRepo, book_applicant, loan_book_yaml

RECORDS: sa.Table = DecisionRecord.__table__


def _predict(client: TestClient, auth, body: dict, endpoint: str = "lending"):
    return client.post(
        f"/api/v1/endpoints/{endpoint}/predict", headers=auth(Role.predictor), json=body
    )


def _schema(client: TestClient, auth, version: int) -> dict:
    response = client.get(f"/api/v1/models/loanbook/versions/{version}", headers=auth(Role.admin))
    assert response.status_code == 200, response.text
    return response.json()["input_schema"]


def _logged(client: TestClient, auth, decision_id: str) -> dict:
    return client.get(f"/api/v1/decisions/{decision_id}", headers=auth(Role.compliance)).json()


def test_integer_coded_categories_are_taken_as_the_data_has_them(
    client: TestClient, auth, served_book: Served
) -> None:
    schema = _schema(client, auth, served_book.versions[0])
    by_name = {f["name"]: f for f in schema["features"]}
    assert by_name["employment"]["categories"] == [1, 2, 3, 4, 5]
    assert by_name["housing"]["categories"] == [1, 2, 3]
    assert by_name["checking_status"]["categories"] == ["A11", "A12", "A13", "A14"]

    scores, ids = set(), []
    for code in (2, 2.0, "2"):
        response = _predict(client, auth, {"features": book_applicant(employment=code)})
        assert response.status_code == 200, response.text
        scores.add(response.json()["score"])
        ids.append(response.json()["decision_id"])
    assert len(scores) == 1  # one category, whatever JSON type carried it
    assert {_logged(client, auth, i)["features"]["employment"] for i in ids} == {2}
    assert (
        _predict(client, auth, {"features": book_applicant(employment=3)}).json()["score"]
        not in scores
    )

    refused = _predict(client, auth, {"features": book_applicant(employment=7)})
    assert refused.status_code == 422
    problem = refused.json()["error"]["details"]["problems"][0]
    assert problem["field"] == "features.employment"
    assert "unseen category 7" in problem["message"]
    assert "Under 1 year (2)" in problem["message"]  # the known codes, with their labels
    fractional = _predict(client, auth, {"features": book_applicant(employment=2.5)})
    assert fractional.status_code == 422
    assert "not a category code" in fractional.text

    meta = client.get("/v2/models/lending", headers=auth(Role.predictor)).json()
    types = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert types["employment"] == "INT64"
    assert types["checking_status"] == "BYTES"
    inputs = [
        {
            "name": name,
            "shape": [1],
            "datatype": "BYTES" if isinstance(v, str) else "FP64",
            "data": [v],
        }
        for name, v in book_applicant(employment=2).items()
    ]
    v2 = client.post(
        "/v2/models/lending/infer", headers=auth(Role.predictor), json={"inputs": inputs}
    )
    assert v2.status_code == 200, v2.text
    outputs = {o["name"]: o["data"][0] for o in v2.json()["outputs"]}
    assert outputs["score"] in scores


def test_a_spec_may_declare_integer_categories_and_refuses_yaml_booleans() -> None:
    base = {
        "model": "m",
        "dataset": {"id": 1},
        "target": {"column": "y", "positive_class": 1},
        "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
    }
    spec = parse_spec(
        {**base, "features": [{"name": "flag", "type": "categorical", "categories": [0, 1]}]}
    )
    assert spec.features[0].categories == [0, 1]
    with pytest.raises(InvalidInput) as refused:
        parse_spec(
            "model: m\ndataset: {id: 1}\ntarget: {column: y, positive_class: 1}\n"
            "estimator: {class: sklearn.linear_model.LogisticRegression}\n"
            "features: [{name: guarantor, type: categorical, categories: [yes, no]}]\n"
        )
    message = json.dumps(refused.value.details)
    assert "features.0.categories" in message
    assert "quote" in message


def test_a_yaml_boolean_target_class_is_refused_before_202_with_the_hint(
    client: TestClient, auth, loan_book_repo: DataRepo
) -> None:
    text = loan_book_yaml(loan_book_repo, model="yes-trap").replace(
        "positive_class: 'yes'", "positive_class: yes"
    )
    response = client.post(
        "/api/v1/runs",
        headers={**auth(Role.data_scientist), "Content-Type": "application/yaml"},
        content=text,
    )
    assert response.status_code == 422, response.text
    problem = response.json()["error"]["details"][0]
    assert problem["field"] == "target.positive_class"
    assert "boolean True" in problem["message"]
    assert "'yes'" in problem["message"]
    assert "quote" in problem["message"]


def test_a_missing_value_is_scored_as_training_handled_it(
    client: TestClient, auth, served_book: Served, engine: sa.Engine
) -> None:
    schema = _schema(client, auth, served_book.versions[0])
    by_name = {f["name"]: f for f in schema["features"]}
    income = by_name["income"]
    assert income["nullable"] is True
    assert income["missing_in_training"] > 0
    assert income["missing"]["impute"] == "median"
    median = income["missing"]["fill_value"]
    assert median == pytest.approx(income["observed_median"], rel=0.2)
    assert by_name["purpose"]["nullable"] is True
    assert by_name["payments_to_income"]["nullable"] is False
    lineage = client.get(
        f"/api/v1/models/loanbook/versions/{served_book.versions[0]}/lineage",
        headers=auth(Role.data_scientist),
    ).json()["lineage"]
    assert lineage["missing_values"]["income"] == {
        "missing_in_training": income["missing_in_training"],
        "nullable": True,
        "impute": "median",
        "fill_value": median,
    }
    assert lineage["missing_values"]["purpose"]["fill_value"] == "missing"

    filled = _predict(client, auth, {"features": book_applicant(income=median)}).json()
    as_null = _predict(client, auth, {"features": book_applicant(income=None)})
    assert as_null.status_code == 200, as_null.text
    left_out = book_applicant()
    del left_out["income"]
    omitted = _predict(client, auth, {"features": left_out})
    assert omitted.status_code == 200, omitted.text
    assert as_null.json()["score"] == omitted.json()["score"] == filled["score"]
    record = _logged(client, auth, as_null.json()["decision_id"])
    assert "income" in record["features"] and record["features"]["income"] is None

    purpose_null = _predict(client, auth, {"features": book_applicant(purpose=None)}).json()
    purpose_text = _predict(client, auth, {"features": book_applicant(purpose="missing")})
    assert purpose_text.status_code == 200, purpose_text.text
    assert purpose_text.json()["score"] == purpose_null["score"]

    refused = _predict(client, auth, {"features": book_applicant(payments_to_income=None)})
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["problems"] == [
        {"field": "features.payments_to_income", "message": "must not be null"}
    ]


def test_a_feature_may_be_audited_as_protected_only_with_a_justification(
    client: TestClient, auth, served_book: Served, loan_book_repo: DataRepo
) -> None:
    text = loan_book_yaml(loan_book_repo)
    start = text.index("    justification:")
    end = text.index("estimator:")
    with pytest.raises(InvalidInput) as refused:
        parse_spec(text[:start] + text[end:])
    assert refused.value.details[0]["field"] == "protected"
    assert "justification" in refused.value.details[0]["message"]

    schema = _schema(client, auth, served_book.versions[0])
    protected = {p["name"]: p for p in schema["protected"]}
    assert protected["age"]["feature"] is True
    assert "Reg B" in protected["age"]["justification"]
    assert protected["sex"]["feature"] is False


def test_protected_context_values_are_validated_and_refusals_logged(
    client: TestClient, auth, served_book: Served, engine: sa.Engine
) -> None:
    ok = _predict(client, auth, {"features": book_applicant(), "context": {"sex": "female"}})
    assert ok.status_code == 200, ok.text
    unknown = _predict(
        client, auth, {"features": book_applicant(), "context": {}}
    )  # not collected: allowed, counted as not provided
    assert unknown.status_code == 200, unknown.text
    for context, field, words in [
        ({"sex": "Female"}, "context.sex", "'Female' is not one of the values 'female', 'male'"),
        ({"foreign_worker": "maybe"}, "context.foreign_worker", "'no', 'yes'"),
        ({"sex": 1}, "context.sex", "is not one of the values"),
    ]:
        response = _predict(client, auth, {"features": book_applicant(), "context": context})
        assert response.status_code == 422, (context, response.text)
        problems = response.json()["error"]["details"]["problems"]
        assert problems[0]["field"] == field
        assert words in problems[0]["message"]
        rejection = response.json()["error"]["details"]["rejection_id"]
        with engine.connect() as connection:
            kind = connection.execute(
                sa.select(RECORDS.c.kind).where(RECORDS.c.decision_id == rejection)
            ).scalar_one()
        assert kind == "rejected"


def test_a_numeric_protected_attribute_must_be_a_number_within_its_bins(
    client: TestClient, auth, served: Served
) -> None:
    from tests.support.factories import applicant

    for age, words in [("twenty", "must be a number"), (150, "outside the declared bins")]:
        response = _predict(
            client, auth, {"features": applicant(), "context": {"age": age}}, endpoint="credit"
        )
        assert response.status_code == 422, response.text
        problem = response.json()["error"]["details"]["problems"][0]
        assert problem["field"] == "context.age"
        assert words in problem["message"]


def test_proxies_are_measured_at_training_and_named_in_the_lineage(
    client: TestClient, auth, served_book: Served
) -> None:
    path = f"/api/v1/models/loanbook/versions/{served_book.versions[0]}/lineage"
    proxies = client.get(path, headers=auth(Role.compliance)).json()["lineage"]["proxies"]
    sex = proxies["attributes"]["sex"]
    assert sex["status"] == "assessed"
    assert sex["top_proxies"][0] == "marital_status"
    assert sex["features"][0]["auc"] > 0.9
    assert any(s.startswith("marital_status predicts sex with AUC 0.9") for s in proxies["summary"])
    assert "groups" in sex

    seen = client.get(path, headers=auth(Role.data_scientist)).json()["lineage"]["proxies"]
    assert seen["attributes"]["sex"]["top_proxies"] == ["marital_status"]
    assert "groups" not in seen["attributes"]["sex"]  # group sizes are compliance's to see
    assert all("group_auc" not in f for f in seen["attributes"]["sex"]["features"])


def test_reasons_use_the_spec_text_for_the_value_and_show_its_label(
    client: TestClient, auth, served_book: Served
) -> None:
    decision = _predict(
        client, auth, {"features": book_applicant(checking_status="A11", income=None)}
    ).json()
    response = client.get(
        f"/api/v1/decisions/{decision['decision_id']}/reasons", headers=auth(Role.compliance)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["favourable"] is False
    by_feature = {r["feature"]: r for r in body["reasons"]}
    checking = by_feature["checking_status"]
    # the spec's text for the value that hurt, not the feature's generic description
    assert checking["text"] == "Checking account overdrawn"
    assert checking["value"] == "A11"
    assert checking["value_label"] == "Balance below 0 (A11)"
    for reason in body["reasons"]:
        if reason["feature"] == "income":
            assert reason["value"] is None and reason["value_label"] == "missing"
