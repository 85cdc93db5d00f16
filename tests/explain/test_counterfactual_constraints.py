"""Counterfactuals on a loan book shaped like the real ones: opaque coded categories with
actionable transitions, an integer-coded ordered scale, a numeric feature with missing values,
and two correlated ratios (payments include housing, so payments >= housing in 99.8% of rows).

The model is trained through the real training code on seeded synthetic data, and explained
through the real search; the schema carries the plausibility fields the spec records
(``transitions``, ``order`` with ``direction``, ``labels``, ``nullable``, ``constraints``).
The builders here are shared by the anchor and robustness tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from explain.anchors import training_labels
from explain.context import ModelContext
from explain.counterfactuals import find_counterfactuals
from lineage.input_schema import FeatureEntry, InputSchema, frame_from_table
from lineage.spec import parse_spec
from lineage.training import binary_target, split_frame, train
from serving.model_cache import LoadedModel

CHECKING_LABELS = {
    "A11": "below 0",
    "A12": "0 to 200",
    "A13": "200 or more",
    "A14": "no checking account",
}
# Opening or improving an account is actionable; "have no checking account" never is.
TRANSITIONS = {"A11": ["A12", "A13"], "A12": ["A13"], "A13": [], "A14": []}
CONSTRAINT = "payments_to_income >= housing_to_income"
LOGISTIC = {"class": "sklearn.linear_model.LogisticRegression", "params": {}}


def loan_book(n: int = 1500, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = np.round(rng.lognormal(10.6, 0.45, n), -1)
    housing = np.round(np.clip(rng.beta(2.0, 9.0, n), 0.01, 0.7), 3)
    payments = np.round(housing + rng.gamma(1.5, 0.06, n), 3)
    broken = rng.random(n) < 0.002  # the few rows of a real book where payments < housing
    payments[broken] = np.round(housing[broken] * 0.8, 3)
    loan = np.round(np.clip(rng.lognormal(9.2, 0.6, n), 500, 60_000), -2)
    checking = rng.choice(["A11", "A12", "A13", "A14"], n, p=[0.27, 0.27, 0.06, 0.40])
    savings = rng.choice([1, 2, 3, 4, 5], n, p=[0.45, 0.2, 0.15, 0.1, 0.1])
    employment = np.round(rng.gamma(2.0, 3.0, n), 1)
    no_employment = rng.random(n) < 0.12
    tenure = rng.choice(["own", "rent", "free"], n, p=[0.6, 0.3, 0.1])
    logit = (
        1.2
        + 0.9 * np.log(income / 40_000)
        - 9.0 * payments
        - 0.3 * housing
        - 0.45 * np.log(loan / 8_000)
        + np.select(
            [checking == "A11", checking == "A12", checking == "A13"], [-1.0, -0.3, 0.4], 1.3
        )
        + 0.35 * (savings - 1)
        + np.where(no_employment, -0.6, 0.08 * np.minimum(employment, 10))
        + np.where(tenure == "own", 0.3, 0.0)
    )
    good = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "income": income,
            "housing_to_income": housing,
            "payments_to_income": payments,
            "loan_amount": loan,
            "checking_status": checking,
            "savings": savings,
            "employment_years": np.where(no_employment, np.nan, employment),
            "tenure": tenure,
            "outcome": np.where(good, "good", "bad"),
        }
    )


SPEC: dict[str, Any] = {
    "model": "book",
    "dataset": {"id": 1},
    "target": {"column": "outcome", "positive_class": "good"},
    "features": [
        {"name": "income", "type": "numeric"},
        {"name": "housing_to_income", "type": "numeric", "bounds": [0.0, 1.0]},
        {
            "name": "payments_to_income",
            "type": "numeric",
            "bounds": [0.0, 2.0],
            "direction": "decrease",
        },
        {
            "name": "loan_amount",
            "type": "numeric",
            "bounds": [500.0, 60000.0],
            "direction": "decrease",
        },
        {"name": "checking_status", "type": "categorical"},
        {"name": "savings", "type": "categorical"},
        {"name": "employment_years", "type": "numeric"},
        {"name": "tenure", "type": "categorical", "immutable": True},
    ],
    "estimator": LOGISTIC,
}


def plausible_schema(schema: dict[str, Any], *, integer_savings: bool = True) -> dict[str, Any]:
    """The recorded schema with the fields the spec declares for plausible changes."""
    codes: list[Any] = [1, 2, 3, 4, 5] if integer_savings else ["1", "2", "3", "4", "5"]
    extra: dict[str, dict[str, Any]] = {
        "checking_status": {"labels": CHECKING_LABELS, "transitions": TRANSITIONS},
        "savings": {"categories": codes, "order": codes, "direction": "increase"},
        "employment_years": {"nullable": True},
    }
    features = [{**f, "nullable": False, **extra.get(f["name"], {})} for f in schema["features"]]
    return {
        **schema,
        "features": features,
        "constraints": [{"left": "payments_to_income", "op": ">=", "right": "housing_to_income"}],
    }


def immutable(*names: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(schema: dict[str, Any]) -> dict[str, Any]:
        features = [
            {**f, "immutable": f["immutable"] or f["name"] in names} for f in schema["features"]
        ]
        return {**schema, "features": features}

    return change


def book_context(
    *,
    n: int = 1500,
    seed: int = 11,
    integer_savings: bool = True,
    change: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> ModelContext:
    """A trained model version of the loan book, as the explainers see it."""
    frame = loan_book(n, seed)
    spec = parse_spec(SPEC)
    outcome = train(spec, frame)
    schema = plausible_schema(outcome.input_schema, integer_savings=integer_savings)
    if change is not None:
        schema = change(schema)
    y, _classes = binary_target(spec, frame)
    train_idx, _valid = split_frame(spec, frame, y)
    typed = InputSchema.from_document(schema)
    rows = frame_from_table(typed, frame.iloc[train_idx][spec.feature_names])
    return ModelContext(
        model=LoadedModel("book", 1, "0" * 64, outcome.pipeline, typed),
        estimator_class=spec.estimator.class_path,
        train=rows.reset_index(drop=True),
        dataset={},
        rows_source="training split",
    )


def decide(context: ModelContext, features: dict[str, Any]) -> Any:
    return context.model.label_for(float(context.model.scores([features])[0]))


DENIED: dict[str, Any] = {
    "income": 30000.0,
    "housing_to_income": 0.25,
    "payments_to_income": 0.40,
    "loan_amount": 15000.0,
    "checking_status": "A11",
    "savings": 1,
    "employment_years": 2.0,
    "tenure": "rent",
}
CLOSE = {**DENIED, "housing_to_income": 0.28, "payments_to_income": 0.30}


@pytest.fixture(scope="module")
def book() -> ModelContext:
    return book_context()


def _explain(context: ModelContext, features: dict[str, Any], k: int = 3) -> dict[str, Any]:
    label = decide(context, features)
    assert label == "bad", "the cases below are denied applicants"
    return find_counterfactuals(context, features, label, k, seed=0)


def test_the_training_data_has_the_real_books_shapes(book: ModelContext) -> None:
    train = book.train
    share = float((train.payments_to_income >= train.housing_to_income).mean())
    assert 0.99 <= share < 1.0
    assert train.employment_years.isna().mean() > 0.05
    assert set(train.savings.dropna()) == {"1", "2", "3", "4", "5"}
    assert (train.checking_status == "A13").mean() < 0.1


@pytest.mark.parametrize("applicant", [DENIED, CLOSE], ids=["denied", "close"])
def test_counterfactuals_keep_payments_at_least_housing(
    book: ModelContext, applicant: dict[str, Any]
) -> None:
    body = _explain(book, applicant)
    assert body["counterfactuals"]
    for cf in body["counterfactuals"]:
        record = {**applicant, **{n: c["to"] for n, c in cf["changes"].items()}}
        assert record["payments_to_income"] >= record["housing_to_income"], cf
        assert decide(book, record) == "good"
    assert body["constraints"]["linear"] == {"enforced": [CONSTRAINT], "not_enforced": []}
    search = body["search"]
    assert search["repaired_for_constraints"] + search["discarded_for_constraints"] > 0


def test_a_constraint_the_applicant_already_breaks_is_reported_not_enforced(
    book: ModelContext,
) -> None:
    breaking = {**DENIED, "housing_to_income": 0.30, "payments_to_income": 0.25}
    body = _explain(book, breaking)
    assert body["constraints"]["linear"] == {
        "enforced": [],
        "not_enforced": [{"constraint": CONSTRAINT, "reason": "this input already breaks it"}],
    }


def test_category_changes_follow_transitions_and_the_order(book: ModelContext) -> None:
    for applicant in (DENIED, {**DENIED, "checking_status": "A12", "savings": 2}):
        body = _explain(book, applicant)
        changed = set()
        for cf in body["counterfactuals"]:
            changes = cf["changes"]
            changed |= set(changes)
            if "checking_status" in changes:
                change = changes["checking_status"]
                assert change["to"] in TRANSITIONS[change["from"]], cf
                assert change["to"] != "A14"
                assert change["to_label"] == CHECKING_LABELS[change["to"]]
            if "savings" in changes:
                # integer codes stay integers, and only go up the order
                assert type(changes["savings"]["to"]) is int
                assert changes["savings"]["to"] > changes["savings"]["from"]
        assert changed & {"checking_status", "savings"}, body["counterfactuals"]
        allowed = body["constraints"]["categorical_transitions"]
        assert allowed["checking_status"] == {
            "allowed": TRANSITIONS[applicant["checking_status"]],
            "rule": "transitions",
        }
        assert allowed["savings"] == {
            "allowed": [s for s in (1, 2, 3, 4, 5) if s > applicant["savings"]],
            "rule": "order (increase)",
        }


def test_a_missing_value_is_never_changed(book: ModelContext) -> None:
    applicant = {**DENIED, "checking_status": None, "employment_years": None}
    for features in (applicant, {**applicant, "income": 45000.0, "payments_to_income": 0.3}):
        body = _explain(book, features)
        assert body["counterfactuals"]
        for cf in body["counterfactuals"]:
            assert not set(cf["changes"]) & {"checking_status", "employment_years"}, cf
        assert body["constraints"]["kept_null"] == ["checking_status", "employment_years"]
        assert body["constraints"]["categorical_transitions"]["checking_status"] == {
            "allowed": [],
            "rule": "kept missing",
        }


def test_a_transition_from_null_must_be_declared(book: ModelContext) -> None:
    from explain.counterfactuals import categorical_targets

    feature: dict[str, Any] = {
        "name": "checking_status",
        "type": "categorical",
        "categories": ["A11", "A12", "A13", "A14"],
        "transitions": {**TRANSITIONS, "null": ["A11", "A12"]},
    }
    assert categorical_targets(FeatureEntry(**feature), None) == (
        ["A11", "A12"],
        "transitions from null",
    )
    assert categorical_targets(FeatureEntry(**{**feature, "transitions": TRANSITIONS}), None) == (
        [],
        "kept missing",
    )
    # integer codes match whatever form the instance holds them in, and come back as declared
    ordered = FeatureEntry(
        name="savings",
        type="categorical",
        categories=[1, 2, 3],
        order=[1, 2, 3],
        direction="decrease",
    )
    assert categorical_targets(ordered, 3) == ([1, 2], "order (decrease)")
    assert categorical_targets(ordered, "2") == ([1], "order (decrease)")


def test_asking_for_more_than_exist_says_why() -> None:
    # only savings may change, and from 4 only up to 5: one counterfactual at most
    context = book_context(
        change=immutable(
            "income",
            "housing_to_income",
            "payments_to_income",
            "loan_amount",
            "checking_status",
            "employment_years",
        )
    )
    applicant = {**DENIED, "savings": 4, "payments_to_income": 0.3, "income": 40000.0}
    body = _explain(context, applicant, k=3)
    assert body["requested"] == 3 and body["k"] == 3
    assert body["returned"] == len(body["counterfactuals"]) <= 1
    assert body["candidates_searched"] == body["searched"] > 0
    reason = body["shortfall_reason"]
    assert reason.startswith(f"asked for 3, found {body['returned']}")
    assert "savings" in reason and f"{body['candidates_searched']} candidates scored" in reason
    assert body["constraints"]["changeable"] == ["savings"]

    nothing = book_context(
        change=immutable(
            "income",
            "housing_to_income",
            "payments_to_income",
            "loan_amount",
            "checking_status",
            "employment_years",
            "savings",
        )
    )
    none = _explain(nothing, applicant, k=2)
    assert none["returned"] == 0 and none["candidates_searched"] == 0
    assert "no feature may change" in none["shortfall_reason"]
    assert none["message"].startswith("no flip found among the 0 candidates")


def test_a_full_answer_has_no_shortfall(book: ModelContext) -> None:
    body = _explain(book, DENIED, k=2)
    assert body["requested"] == body["returned"] == 2
    assert body["shortfall_reason"] is None


def _independent_nearest(context: ModelContext, record: dict[str, Any], target: str) -> float:
    """The plausibility distance, computed row by row without the module's code."""
    train = context.train
    labels = np.asarray(training_labels(context))
    best = np.inf
    spreads = {}
    for f in context.input_schema.features:
        if f.numeric:
            observed = train[f.name].dropna().to_numpy(float)
            q1, q3 = np.quantile(observed, [0.25, 0.75])
            spreads[f.name] = (q3 - q1) / 1.349 or np.std(observed) or 1.0
    for i in np.flatnonzero(labels == target):
        total = 0.0
        for f in context.input_schema.features:
            name = f.name
            a, b = record.get(name), train.at[i, name]
            a_missing = a is None
            b_missing = isinstance(b, float) and np.isnan(b)
            if a_missing or b_missing:
                total += 0.0 if a_missing and b_missing else 1.0
            elif f.numeric:
                total += abs(float(a) - float(b)) / spreads[name]
            else:
                total += float(str(a) != str(b))
        best = min(best, total)
    return float(best)


def test_each_counterfactual_reports_how_plausible_it_is(book: ModelContext) -> None:
    applicant = {**DENIED, "employment_years": None}
    body = _explain(book, applicant)
    for cf in body["counterfactuals"]:
        record = {**applicant, **{n: c["to"] for n, c in cf["changes"].items()}}
        plausibility = cf["plausibility"]
        assert plausibility["nearest_target_class_distance"] == pytest.approx(
            _independent_nearest(book, record, "good"), abs=1e-9
        )
        assert 0.0 <= plausibility["distance_quantile"] <= 1.0
        assert "nearest training row" in plausibility["method"]
    ranked = [
        (cf["distance"], cf["plausibility"]["nearest_target_class_distance"])
        for cf in body["counterfactuals"]
    ]
    assert ranked == sorted(ranked)


def test_the_plausibility_quantile_places_typical_and_far_inputs(book: ModelContext) -> None:
    from explain.counterfactuals import Plausibility

    labels = np.asarray(training_labels(book))
    plausibility = Plausibility(book.input_schema, book.train, labels == "good")
    row = book.train.loc[int(np.flatnonzero(labels == "good")[0])]
    typical = {n: (None if isinstance(v, float) and np.isnan(v) else v) for n, v in row.items()}
    far = {**typical, "income": 5_000_000.0, "loan_amount": 60_000.0, "checking_status": "A13"}
    near, away = plausibility.of([typical, far])
    assert near["nearest_target_class_distance"] == 0.0
    assert near["distance_quantile"] < 0.5
    assert away["nearest_target_class_distance"] > 10
    assert away["distance_quantile"] == 1.0


def test_the_same_request_gives_the_same_answer(book: ModelContext) -> None:
    first = _explain(book, CLOSE)
    again = _explain(book_context(), CLOSE)
    assert first == again


def test_the_spec_records_what_the_search_reads() -> None:
    """The schema the tests above use is the one a spec declaring these fields records."""
    declared_fields: dict[str, dict[str, Any]] = {
        "checking_status": {"labels": CHECKING_LABELS, "transitions": TRANSITIONS},
        "savings": {
            "categories": [1, 2, 3, 4, 5],
            "order": [1, 2, 3, 4, 5],
            "direction": "increase",
        },
        "employment_years": {"nullable": True},
    }
    features = [{**f, **declared_fields.get(f["name"], {})} for f in SPEC["features"]]
    declared = {**SPEC, "features": features, "constraints": [CONSTRAINT]}
    frame = loan_book()
    recorded = train(parse_spec(declared), frame).input_schema
    assert recorded == plausible_schema(train(parse_spec(SPEC), frame).input_schema)
