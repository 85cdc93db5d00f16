"""The logistic scorecard (``lineage.scorecard``): its bins, weights, points and reasons, on
books shaped like real ones (coded integer categories, missing values, small samples)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from explain.reasons import adverse_action_reasons
from lineage.input_schema import InputSchema, frame_from_table, to_frame
from lineage.scorecard import bin_index
from lineage.spec import TrainingSpec, spec_hash
from lineage.synthetic import demo_spec, generate_loans
from lineage.training import train
from lineage.woe import WoeBinner, numeric_edges


def _spec(**scorecard: Any) -> dict[str, Any]:
    spec = demo_spec(dataset={"name": "loans", "repo": "/tmp/x", "path": "a.csv", "rev": "HEAD"})
    spec["estimator"] = {
        "class": "sklearn.linear_model.LogisticRegression",
        "params": {"max_iter": 1000},
    }
    spec["scorecard"] = scorecard
    return spec


def _coded_book(n: int, seed: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The synthetic book as a lender exports it: housing as integer codes, gaps in two
    numeric columns and in purpose."""
    frame = generate_loans(n, seed=seed)
    rng = np.random.default_rng(seed)
    codes = {"own": 1, "rent": 2, "mortgage": 3}
    frame["housing"] = frame["housing"].map(codes).astype(int)
    for column in ("employment_years", "debt_to_income", "purpose"):
        frame.loc[rng.random(n) < 0.08, column] = np.nan
    spec = _spec(binning="monotone", max_bins=5)
    for feature in spec["features"]:
        if feature["name"] == "housing":
            feature["categories"] = [1, 2, 3]
    return frame, spec


def test_the_points_of_each_row_add_up_to_its_score_on_a_coded_book_with_gaps() -> None:
    frame, document = _coded_book(3000, seed=11)
    spec = TrainingSpec.model_validate(document)
    outcome = train(spec, frame)
    schema = InputSchema.from_document(outcome.input_schema)
    card = schema.scorecard
    assert card is not None and outcome.scorecard == card.model_dump(mode="json")
    x = frame_from_table(schema, frame[spec.feature_names])
    proba = outcome.pipeline.predict_proba(x)[:, 1]
    # the positive class (repaid) is favourable: the score is offset + factor * its log-odds
    expected = card.offset + card.factor * np.log(proba / (1 - proba))
    summed = np.array([sum(card.points(row).values()) for row in x.to_dict("records")])
    assert np.abs(summed - expected).max() < 1e-6
    # 20 points double the odds: a score 20 higher is twice the odds of repaying
    assert card.factor == pytest.approx(20 / math.log(2))
    assert card.offset + card.factor * math.log(50) == pytest.approx(600)

    by_name = {f.feature: f for f in card.features}
    housing = by_name["housing"]
    assert sorted(c for g in housing.groups or [] for c in g) == ["1", "2", "3"]
    employment = by_name["employment_years"]
    assert employment.bins[-1].label == "missing" and employment.bins[-1].rows > 0
    for feature in card.features:
        values = [b for b in feature.bins if b.rows]
        assert len([b for b in feature.bins[:-1] if b.label != "missing"]) <= 5 + 1
        shares = [b.rows / sum(v.rows for v in values) for b in values if b.label != "missing"]
        assert min(shares) >= 0.05 * 0.9 or len(shares) == 1, (feature.feature, shares)
        if feature.direction is not None:
            rates = [b.positive_rate for b in feature.bins[:-1]]
            steps = np.diff(np.asarray(rates, dtype=float))
            assert (steps >= 0).all() if feature.direction == "rising" else (steps <= 0).all()


def test_reasons_are_the_most_points_lost_and_a_favourable_decision_has_none() -> None:
    frame, document = _coded_book(2000, seed=5)
    spec = TrainingSpec.model_validate(document)
    schema = InputSchema.from_document(train(spec, frame).input_schema)
    card = schema.scorecard
    assert card is not None
    applicant = {
        **{f: frame[f].iloc[0] for f in spec.feature_names},
        "income": 12000.0,
        "late_payments": 6,
        "debt_to_income": None,
        "housing": 2,
    }
    found = adverse_action_reasons(schema, {}, 0, schema.favourable, applicant)
    row = to_frame(schema, [applicant]).iloc[0].to_dict()
    lost = {
        f.feature: f.max_points - f.bins[f.bin_of(row[f.feature])].points for f in card.features
    }
    ranked = sorted((v, k) for k, v in lost.items() if v > 1e-9)[::-1][:4]
    assert [r["feature"] for r in found["reasons"]] == [k for _v, k in ranked]
    assert found["reasons"][0]["points_lost"] == pytest.approx(ranked[0][0])
    assert {"income", "late_payments"} <= {r["feature"] for r in found["reasons"]}
    assert found["scorecard"]["score"] == pytest.approx(sum(card.points(row).values()), abs=1e-5)
    favourable = adverse_action_reasons(schema, {}, 1, schema.favourable, applicant)
    assert favourable["favourable"] is True and favourable["reasons"] == []


def test_a_small_book_still_gets_finite_weights_and_bins_of_a_fair_size() -> None:
    frame, document = _coded_book(60, seed=2)
    document["validation"] = {"fraction": 0.25, "stratify": True}
    document["scorecard"] = {"binning": "monotone", "max_bins": 6, "min_bin_share": 0.1}
    outcome = train(TrainingSpec.model_validate(document), frame)
    card = InputSchema.from_document(outcome.input_schema).scorecard
    assert card is not None
    for feature in card.features:
        assert all(math.isfinite(b.woe) and math.isfinite(b.points) for b in feature.bins)
        filled = [b.rows for b in feature.bins if b.rows and b.label != "missing"]
        total = sum(filled)
        assert len(filled) == 1 or min(filled) >= 0.1 * total, (feature.feature, filled)


def test_monotone_and_quantile_binning_on_known_data() -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 100, 5000)
    y = (rng.random(5000) < 0.2 + 0.006 * values).astype(int)  # rate rises with the value
    edges, direction = numeric_edges(values, y, "monotone", 5, 0.05)
    assert direction == "rising" and 1 <= len(edges) <= 4
    index = np.searchsorted(edges, values, side="right")
    rates = [y[index == i].mean() for i in range(len(edges) + 1)]
    assert rates == sorted(rates)
    quantile, none = numeric_edges(values, y, "quantile", 4, 0.0)
    assert none is None and len(quantile) == 3
    counts = np.bincount(np.searchsorted(quantile, values, side="right"))
    assert counts.min() >= 0.24 * len(values)
    # one value, or none at all: one bin
    assert numeric_edges(np.full(10, 3.0), y[:10], "monotone", 5, 0.05) == ([], None)


def test_a_missing_value_and_an_unseen_category_fall_in_neutral_bins() -> None:
    x = pd.DataFrame({"purpose": ["car"] * 50 + ["home"] * 50 + ["boat"] * 2})
    y = np.asarray([1] * 40 + [0] * 10 + [1] * 20 + [0] * 30 + [1, 0])
    binner = WoeBinner(kind="categorical", max_bins=5, min_bin_share=0.05).fit(x, y)
    spec = binner.bins_[0]
    assert spec["groups"][-1] == ["boat"]  # rare: pooled in other
    other, missing = len(spec["groups"]) - 1, len(spec["groups"])
    assert bin_index(spec, "plane") == other and bin_index(spec, float("nan")) == missing
    assert spec["woe"][missing] == 0.0 and spec["counts"][missing] == 0
    weights = binner.transform(pd.DataFrame({"purpose": ["car", "home", np.nan]}))
    assert weights[0, 0] > 0 > weights[1, 0] and weights[2, 0] == 0.0


def test_the_spec_refuses_what_a_scorecard_cannot_be_and_leaves_older_hashes_alone() -> None:
    ok = TrainingSpec.model_validate(_spec())
    assert ok.scorecard is not None and ok.scorecard.pdo == 20
    for change, words in (
        ({"estimator": {"class": "sklearn.ensemble.HistGradientBoostingClassifier"}}, "estimator"),
        ({"transforms": {"numeric": {"scale": "minmax"}}}, "transforms"),
        (
            {"mitigation": {"attribute": "sex", "constraint": "demographic_parity"}},
            "mitigation",
        ),
        ({"scorecard": {"max_bins": 1}}, "max_bins"),
        ({"scorecard": {"pdo": 0}}, "pdo"),
    ):
        with pytest.raises(ValidationError, match=words):
            TrainingSpec.model_validate({**_spec(), **change})
    plain = _spec()
    del plain["scorecard"]
    resolved = TrainingSpec.model_validate(plain).resolved()
    assert "scorecard" not in resolved
    assert spec_hash(resolved) == spec_hash(TrainingSpec.model_validate(resolved).resolved())
