"""A model version's input schema, typed (issue 18): ``InputSchema`` reads the stored document
once, gives it back exactly (so what is stored, hashed and returned is unchanged), names the
field when a document is not one it can read, and holds the one decision rule.

The round trips run on the documents the registry really stores (the demo model, the loan-book
model, a model registered from outside), read back from SQLite and PostgreSQL, and on documents
as the code before the loan-book work (issue 17) wrote them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from core.auth.models import Role
from core.db import session_factory, transaction
from lineage import registry
from lineage.input_schema import FeatureEntry, InputSchema, InvalidInputSchema
from lineage.spec import DEFAULT_THRESHOLD, Decision
from serving.model_cache import LoadedModel
from tests.conftest import Served
from tests.explain.test_external_explained import _external
from tests.support.factories import DataRepo

# As the code before the loan-book work wrote a trained model's schema (12e30cc to a51095d):
# no nullable, missing_in_training, observed_median or missing; categories as text; each
# protected attribute dumped whole, ``bins: null`` included; no constraints.
BEFORE_ISSUE_17: dict[str, Any] = {
    "features": [
        {
            "name": "income",
            "type": "numeric",
            "description": "Income insufficient for the amount requested",
            "immutable": False,
            "direction": "increase",
            "bounds": [0.0, 10000000.0],
            "observed_range": [8000.0, 254000.0],
        },
        {
            "name": "late_payments",
            "type": "numeric",
            "description": None,
            "immutable": True,
            "direction": "any",
            "bounds": None,
            "observed_range": [0.0, 9.0],
        },
        {
            "name": "purpose",
            "type": "categorical",
            "description": "Purpose of the loan",
            "immutable": False,
            "direction": "any",
            "categories": ["business", "car", "education", "furniture", "repairs"],
            "unseen": "reject",
        },
    ],
    "protected": [
        {"name": "sex", "type": "categorical", "bins": None},
        {"name": "age", "type": "numeric", "bins": [18.0, 25.0, 40.0, 60.0, 120.0]},
    ],
    "target": "repaid",
    "classes": [0, 1],
    "positive_class": 1,
    "favourable_class": 1,
    "threshold": 0.5,
}
# A model registered from outside then: its classes kept in the other order.
REGISTERED_BEFORE = {**BEFORE_ISSUE_17, "protected": [], "positive_index": 0}


def _canonical(document: Any) -> str:
    return json.dumps(document, sort_keys=True)


def _round_trips(document: dict[str, Any]) -> InputSchema:
    kept = copy.deepcopy(document)
    schema = InputSchema.from_document(document)
    assert schema.document() == kept
    assert _canonical(schema.document()) == _canonical(kept), "same JSON, so the same hashes"
    assert document == kept, "reading a document never changes it"
    assert InputSchema.from_document(schema.document()) == schema
    return schema


# Round trips on the stored documents ------------------------------------------------------------


def _stored(engine: sa.Engine, name: str, version: int) -> dict[str, Any]:
    with transaction(session_factory(engine)) as session:
        _model, found = registry.get_version(session=session, name=name, version=version)
        return found.input_schema


def _check_stored(
    client: TestClient, auth: Any, engine: sa.Engine, name: str, version: int
) -> InputSchema:
    stored = _stored(engine, name, version)
    schema = _round_trips(stored)
    response = client.get(f"/api/v1/models/{name}/versions/{version}", headers=auth(Role.admin))
    assert response.status_code == 200, response.text
    assert response.json()["input_schema"] == schema.document()
    loaded = client.app.state.serving.model(name, version)
    assert isinstance(loaded.input_schema, InputSchema)
    assert loaded.input_schema == schema
    assert loaded.input_schema.document() == stored
    return schema


def test_the_demo_models_stored_schema_reads_back_exactly(
    client: TestClient, auth: Any, engine: sa.Engine, served: Served
) -> None:
    schema = _check_stored(client, auth, engine, "credit", served.versions[0])
    assert [f.name for f in schema.features if f.numeric][:2] == ["income", "debt_to_income"]
    assert schema.by_name["housing"].immutable and schema.by_name["purpose"].unseen == "reject"
    assert schema.protected_names == ["sex", "age"]
    assert schema.by_name["income"].missing is not None, "the imputation training recorded"
    assert schema.label_for(schema.threshold) == 1 and schema.label_for(0.4999) == 0


def test_the_loan_books_stored_schema_reads_back_exactly(
    client: TestClient, auth: Any, engine: sa.Engine, served_book: Served
) -> None:
    schema = _check_stored(client, auth, engine, "loanbook", served_book.versions[0])
    employment = schema.by_name["employment"]
    assert employment.categories == [1, 2, 3, 4, 5], "integer codes stay integers"
    assert employment.order == [1, 2, 3, 4, 5] and employment.direction == "increase"
    assert employment.value_label(2) == "Under 1 year (2)"
    assert schema.by_name["income"].nullable, "income has gaps in the book"
    assert [c.text for c in schema.constraints or []] == ["payments_to_income >= housing_to_income"]
    age = next(p for p in schema.protected if p.name == "age")
    assert age.feature and age.type == "numeric" and age.justification
    assert schema.classes == ["no", "yes"] and schema.favourable == "yes"
    assert schema.label_for(0.5) == "yes" and schema.label_for(0.4999) == "no"


def test_a_registered_models_stored_schema_reads_back_exactly(
    client: TestClient, auth: Any, engine: sa.Engine, data_repo: DataRepo
) -> None:
    served = _external(client, auth, data_repo)
    schema = _check_stored(client, auth, engine, "ext", served.versions[0])
    assert "positive_index" in schema.document()
    assert schema.positive_index == 1


# Documents as earlier code wrote them -----------------------------------------------------------


def test_a_document_written_before_issue_17_reads_back_exactly() -> None:
    schema = _round_trips(BEFORE_ISSUE_17)
    income = schema.by_name["income"]
    assert not income.nullable and income.missing is None and income.missing_in_training is None
    assert not income.missing_recorded, "the card says it was not recorded"
    assert schema.by_name["purpose"].codes["car"] == "car"
    assert not schema.protected[0].feature and schema.protected[0].bins is None
    assert schema.constraints is None and schema.positive_index == 1
    assert "nullable" not in schema.document()["features"][0], "no key is added"


def test_a_registered_models_document_keeps_its_class_order() -> None:
    schema = _round_trips(REGISTERED_BEFORE)
    assert schema.positive_index == 0


def test_a_document_naming_its_decision_words_reads_back_exactly() -> None:
    document = {**BEFORE_ISSUE_17, "decision_words": {"favourable": "accepted"}}
    assert _round_trips(document).decision_words == {"favourable": "accepted"}


def test_values_are_kept_exactly_as_stored() -> None:
    """No conversion: the code 2 stays an int, "2" text, 2.5 a float, True a boolean."""
    document = copy.deepcopy(BEFORE_ISSUE_17)
    document["features"][2]["categories"] = [1, "2", 2.5, True]
    document["classes"] = [False, True]
    document["positive_class"] = document["favourable_class"] = True
    schema = _round_trips(document)
    assert [type(c) for c in schema.features[2].categories or []] == [int, str, float, bool]
    assert schema.label_for(0.7) is True


# The decision rule, written once ----------------------------------------------------------------


def test_the_decision_rule_gives_the_positive_class_at_or_above_the_threshold() -> None:
    schema = InputSchema.from_document({**BEFORE_ISSUE_17, "threshold": 0.3})
    assert schema.label_for(0.3) == 1 and schema.label_for(0.29999) == 0
    assert schema.label_for(np.float64(0.3)) == 1
    scores = np.array([0.0, 0.29999, 0.3, 0.9])
    assert schema.positive(scores).tolist() == [False, False, True, True]
    assert [schema.label_for(s) for s in scores] == [0, 0, 1, 1]


def test_without_a_threshold_the_default_is_used_and_not_written() -> None:
    document = {k: v for k, v in BEFORE_ISSUE_17.items() if k != "threshold"}
    schema = _round_trips(document)
    assert schema.threshold == DEFAULT_THRESHOLD == Decision().threshold == 0.5, "one default"
    assert "threshold" not in schema.document()
    assert schema.label_for(0.5) == 1 and schema.label_for(0.49) == 0


def test_the_favourable_class_defaults_to_the_positive_one() -> None:
    schema = InputSchema.from_document({**BEFORE_ISSUE_17, "favourable_class": None})
    assert schema.favourable == 1 and schema.is_favourable("1") and schema.is_favourable(1.0)
    risk = InputSchema.from_document({**BEFORE_ISSUE_17, "favourable_class": 0})
    assert risk.favourable == 0 and risk.is_favourable(1) is False
    assert risk.is_favourable(None) is None


# Validated once, with the field named -----------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["features"][1].update(type="number"), "input_schema.features.1.type"),
        (lambda d: d["features"][0].update(colour="red"), "input_schema.features.0.colour"),
        (lambda d: d["features"][2].update(categories=[["a"]]), "input_schema.features.2."),
        (lambda d: d["features"][0].update(bounds=[0.0]), "input_schema.features.0.bounds"),
        (lambda d: d.update(classes=[0, 1, 2]), "input_schema.classes"),
        (lambda d: d.update(positive_class=0), "input_schema.positive_class"),
        (lambda d: d.update(threshold="0.5"), "input_schema.threshold"),
        (lambda d: d.update(threshold=1.5), "input_schema.threshold"),
        (lambda d: d.pop("target"), "input_schema.target"),
        (lambda d: d["protected"][1].update(type="ordinal"), "input_schema.protected.1.type"),
        (lambda d: d["features"].append(dict(d["features"][0])), "input_schema.features"),
    ],
)
def test_a_document_it_cannot_read_is_refused_naming_the_field(change: Any, field: str) -> None:
    document = copy.deepcopy(BEFORE_ISSUE_17)
    change(document)
    with pytest.raises(InvalidInputSchema) as raised:
        InputSchema.from_document(document)
    fields = [d["field"] for d in raised.value.details]
    assert any(f.startswith(field) for f in fields), fields
    assert raised.value.status_code == 409 and field.split(".")[1] in raised.value.message


def test_a_schema_is_frozen() -> None:
    schema = InputSchema.from_document(BEFORE_ISSUE_17)
    with pytest.raises(ValueError, match="frozen"):
        schema.threshold = 0.9  # type: ignore[misc]


# A loaded model holds the typed schema only ------------------------------------------------------


def test_a_loaded_model_holds_the_typed_schema_only() -> None:
    schema = InputSchema.from_document(BEFORE_ISSUE_17)
    model = LoadedModel("credit", 1, "0" * 64, None, schema)
    assert not hasattr(model, "schema"), "no dict copy of the document beside the typed one"
    assert [p.name for p in schema.protected] == ["sex", "age"]
    assert schema.protected[1].bins == [18, 25, 40, 60, 120]
    assert model.label_for(0.5) == 1 and model.label_for(0.1) == 0


def test_a_feature_reads_its_value_with_its_label() -> None:
    feature = FeatureEntry(
        name="employment", type="categorical", categories=[1, 2], labels={"2": "Under 1 year"}
    )
    assert feature.value_label(2.0) == "Under 1 year (2.0)"
    assert feature.value_label("1") == "1" and feature.value_label(None) == "missing"
    numeric = FeatureEntry(name="income", type="numeric", labels={"2": "two"})
    assert numeric.value_label(2) == "2", "labels are for category codes only"
