"""Training under a fairness constraint (fairlearn's exponentiated gradient) and coarsening a
numeric feature into bins: both are spec fields, trained by the real pipeline on a seeded book
where the recorded repayments carry a bias against women."""

from __future__ import annotations

import copy
import io
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.reductions import DemographicParity, ExponentiatedGradient
from sklearn.linear_model import LogisticRegression

from core.errors import InvalidInput
from governance.demo import demo_spec
from lineage.mitigation import ReductionClassifier
from lineage.spec import parse_spec
from lineage.training import train
from tests.experiments.test_lda_search import _proxied_book


@pytest.fixture(scope="module")
def book() -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(_proxied_book()))


def _spec(**changes: Any) -> dict[str, Any]:
    spec = demo_spec(
        model="mitigated",
        dataset={"name": "book", "repo": "/nowhere", "path": "book.csv", "rev": "0" * 40},
        seed=7,
    )
    spec["estimator"]["params"]["max_iter"] = 30
    keep = {f["name"]: f for f in spec["features"]}
    spec["features"] = [
        keep["income"],
        keep["debt_to_income"],
        {"name": "zip_risk", "type": "numeric", "bounds": [0, 1]},
    ]
    spec.update(changes)
    return spec


def _ratio(outcome: Any) -> float:
    rates = [g["selection_rate"] for g in outcome.metrics_by_group["sex"].values()]
    return float(min(rates) / max(rates))


def test_the_reduction_scores_as_fairlearn_does_and_never_reads_the_attribute() -> None:
    rng = np.random.default_rng(0)
    group = np.where(rng.random(600) < 0.5, "a", "b")
    X = rng.normal(size=(600, 3))
    X[:, 1] += (group == "a") * 1.5  # a proxy for the group
    y = ((X[:, 0] + (group == "a") * 2.0 + rng.normal(scale=0.5, size=600)) > 1.0).astype(int)
    ours = ReductionClassifier(LogisticRegression(), eps=0.02, max_iter=30)
    ours.fit(X, y, sensitive_features=group)
    theirs = ExponentiatedGradient(LogisticRegression(), DemographicParity(), eps=0.02, max_iter=30)
    theirs.fit(X, y, sensitive_features=group)
    assert ours.predict_proba(X)[:, 1] == pytest.approx(theirs._pmf_predict(X)[:, 1])
    assert abs(ours.weights_.sum() - 1.0) < 1e-9 and len(ours.predictors_) >= 1
    # A plain logistic regression selects group a far more; the reduction narrows the gap.
    plain = LogisticRegression().fit(X, y).predict(X)
    fair = ours.predict(X)
    gap = abs(plain[group == "a"].mean() - plain[group == "b"].mean())
    narrowed = abs(fair[group == "a"].mean() - fair[group == "b"].mean())
    assert narrowed < gap / 2, (gap, narrowed)
    with pytest.raises(ValueError, match="protected groups"):
        ReductionClassifier(LogisticRegression()).fit(X, y)


def test_a_mitigated_spec_trains_fairer_deterministically_without_the_attribute(
    book: pd.DataFrame,
) -> None:
    plain = train(parse_spec(_spec()), book)
    spec = parse_spec(_spec(mitigation={"attribute": "sex", "eps": 0.01}))
    mitigated = train(spec, book)
    assert _ratio(mitigated) > _ratio(plain) + 0.15, (_ratio(plain), _ratio(mitigated))
    assert [f["name"] for f in mitigated.input_schema["features"]] == [
        "income",
        "debt_to_income",
        "zip_risk",
    ], "the model scores without sex"
    again = train(spec, book)
    rows = book[spec.feature_names].head(200)
    assert np.array_equal(
        again.pipeline.predict_proba(rows), mitigated.pipeline.predict_proba(rows)
    ), "the same spec refits to the same model"
    assert spec.resolved()["mitigation"]["constraint"] == "demographic_parity"


def test_a_coarsened_feature_reaches_the_model_as_its_bin_only(book: pd.DataFrame) -> None:
    spec = parse_spec(_spec(transforms={"overrides": {"income": {"bins": 4}}}))
    outcome = train(spec, book)
    preprocess = outcome.pipeline.named_steps["preprocess"]
    columns = preprocess.transform(book[spec.feature_names].head(500))
    names = list(preprocess.get_feature_names_out())
    income = columns[:, next(i for i, n in enumerate(names) if n.endswith("__income"))]
    assert len(np.unique(income)) == 4
    # Two incomes in the same quartile score the same; the plain model tells them apart.
    low, high = np.quantile(book["income"], [0.30, 0.45])
    pair = book[spec.feature_names].head(1).copy()
    pair = pd.concat([pair.assign(income=low), pair.assign(income=high)])
    scores = outcome.pipeline.predict_proba(pair)[:, 1]
    assert scores[0] == scores[1]
    plain = train(parse_spec(_spec()), book).pipeline.predict_proba(pair)[:, 1]
    assert plain[0] != plain[1]


def test_specs_without_the_new_fields_resolve_as_before_and_bad_ones_are_refused() -> None:
    resolved = parse_spec(_spec()).resolved()
    assert "mitigation" not in resolved
    assert "bins" not in resolved["transforms"]["numeric"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"mitigation": {"attribute": "religion"}}, "not a protected attribute"),
        ({"mitigation": {"attribute": "sex", "eps": 0}}, "mitigation.eps"),
        ({"transforms": {"overrides": {"income": {"bins": 4, "impute": "none"}}}}, "imputation"),
        ({"transforms": {"overrides": {"income": {"bins": 1}}}}, "bins"),
    ]
    for change, words in cases:
        with pytest.raises(InvalidInput) as caught:
            parse_spec(_spec(**copy.deepcopy(change)))
        assert words in str(caught.value) + str(caught.value.details), (change, caught.value)
