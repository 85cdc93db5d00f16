"""Anchors on a loan book shaped like the real ones: a rule is "met" only on enough training rows
other than the applicant's own, with a lower confidence bound that clears the threshold, and
every message agrees with the numbers beside it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.stats import beta

from explain.anchors import explain_anchor, training_labels
from explain.context import ModelContext
from tests.explain.test_counterfactual_constraints import DENIED, book_context, decide

# Row 215 of the training split: alibi plus the old refinement gave it a six-condition rule
# "met" at precision 1.0 on one training row, the applicant's own.
OWN_ROW = 215
MIN_SUPPORT = 20  # the documented default, pinned here


@pytest.fixture(scope="module")
def book() -> ModelContext:
    return book_context(integer_savings=False)


def _row(context: ModelContext, index: int) -> dict[str, Any]:
    return {
        str(name): None if isinstance(value, float) and np.isnan(value) else value
        for name, value in context.train.loc[index].items()
    }


def _anchor(context: ModelContext, features: dict[str, Any], threshold: float) -> dict[str, Any]:
    return explain_anchor(context, features, decide(context, features), threshold, seed=0)


def _same_as(context: ModelContext, features: dict[str, Any]) -> Any:
    """Training rows equal to the applicant, computed without the module's code."""
    train = context.train
    mask = np.ones(len(train), dtype=bool)
    for name, value in features.items():
        column = train[name]
        if value is None:
            mask &= column.isna().to_numpy()
        else:
            mask &= (column.astype(str) == str(value)).to_numpy() | (
                column.to_numpy(dtype=object) == value
            )
    return mask


def _check_numbers(context: ModelContext, features: dict[str, Any], body: dict[str, Any]) -> None:
    """Recount the rule on the training rows, leaving the applicant out, and hold every field
    and the message to that count."""
    train = context.train
    mask = np.ones(len(train), dtype=bool)
    for condition in body["conditions"]:
        column = train[condition["feature"]]
        if condition.get("missing"):
            mask &= column.isna().to_numpy()
        elif "equals" in condition:
            mask &= (column.astype(str) == condition["equals"]).to_numpy()
        else:
            values = column.to_numpy(dtype=float)
            if condition["above"] is not None:
                mask &= values > condition["above"]
            if condition["at_most"] is not None:
                mask &= values <= condition["at_most"]
    own = _same_as(context, features)
    mask &= ~own
    rows = int(mask.sum())
    labels = np.asarray(training_labels(context))
    hits = int((labels[mask] == str(body["label"])).sum())
    assert body["explained_row_in_training"] is bool(own.any())
    assert body["training_rows"] == {
        "matching": rows,
        "total": int((~own).sum()),
        "left_out_as_the_explained_row": int(own.sum()),
    }
    assert body["coverage_rows"] == rows
    assert body["min_support"] == MIN_SUPPORT
    assert body["bound"]["method"].startswith("Clopper-Pearson")
    assert body["bound"]["sided"] == "one-sided lower bound"
    threshold = body["threshold"]
    if rows == 0:
        assert body["precision"] is None and body["precision_lower_bound"] is None
        met = False
    else:
        lower = float(beta.ppf(0.05, hits, rows - hits + 1)) if hits else 0.0
        assert body["precision"] == pytest.approx(hits / rows)
        assert body["precision_lower_bound"] == pytest.approx(lower, abs=1e-12)
        met = rows >= MIN_SUPPORT and lower >= threshold
    assert body["meets_threshold"] is met and body["reliable"] is met
    if met:
        assert body["message"] is None
        return
    message = body["message"]
    assert message.startswith("no reliable rule: ")
    assert ("no training rows" in message) == (rows == 0)
    assert ("minimum support" in message) == (0 < rows < MIN_SUPPORT)
    assert ("below the threshold" in message) == (rows >= MIN_SUPPORT)
    if rows:
        assert f"{rows} training rows" in message


def test_a_rule_resting_on_the_applicants_own_row_is_never_met(book: ModelContext) -> None:
    applicant = _row(book, OWN_ROW)
    body = _anchor(book, applicant, 0.95)
    assert body["meets_threshold"] is False, body
    assert body["explained_row_in_training"] is True
    assert body["training_rows"]["left_out_as_the_explained_row"] == 1
    _check_numbers(book, applicant, body)
    assert "other than the applicant's own" in body["message"]


def test_a_precise_rule_on_a_handful_of_rows_is_not_met(book: ModelContext) -> None:
    # the same applicant, not in the training split: the old answer was a six-condition rule
    # "met" at precision 1.0 on the one training row it matched
    applicant = {**_row(book, OWN_ROW), "income": float(book.train.at[OWN_ROW, "income"]) + 1}
    body = _anchor(book, applicant, 0.95)
    assert body["meets_threshold"] is False, body
    assert body["reliable"] is False
    assert body["explained_row_in_training"] is False
    _check_numbers(book, applicant, body)


@pytest.mark.parametrize(("index", "threshold"), [(0, 0.95), (369, 0.95), (553, 0.9), (1138, 0.85)])
def test_every_answer_agrees_with_its_own_numbers(
    book: ModelContext, index: int, threshold: float
) -> None:
    applicant = _row(book, index)
    body = _anchor(book, applicant, threshold)
    _check_numbers(book, applicant, body)
    assert len(body["rule"].split(" AND ")) == len(body["conditions"]) or not body["conditions"]


def test_some_rules_are_met_and_none_without_support(book: ModelContext) -> None:
    verdicts = []
    for index in (0, 369, 492):
        body = _anchor(book, _row(book, index), 0.95)
        verdicts.append(body["meets_threshold"])
        if body["meets_threshold"]:
            assert body["coverage_rows"] >= MIN_SUPPORT
            assert body["precision_lower_bound"] >= 0.95
    assert any(verdicts)


def test_missing_values_and_integer_codes_are_conditions_like_any_other() -> None:
    context = book_context(integer_savings=True)
    applicant = {**DENIED, "checking_status": None, "employment_years": None, "savings": 2}
    body = _anchor(context, applicant, 0.9)
    _check_numbers(context, applicant, body)
    for condition in body["conditions"]:
        if condition["feature"] in {"checking_status", "employment_years"}:
            assert condition == {"feature": condition["feature"], "missing": True}
        if condition["feature"] == "savings":
            assert condition == {"feature": "savings", "equals": "2"}
    texts = body["rule"].split(" AND ")
    assert all(
        " is missing" in t
        for t in texts
        if t.split(" ")[0] in {"checking_status", "employment_years"}
    )
    again = _anchor(book_context(integer_savings=True), applicant, 0.9)
    assert again == body


def test_a_rule_that_matches_no_rows_says_so_and_has_no_precision() -> None:
    from explain import anchors
    from explain.anchors import Support, message_for

    assert anchors.MIN_SUPPORT == MIN_SUPPORT

    empty = Support(rows=0, hits=0)
    assert empty.precision is None and empty.lower is None
    assert not empty.meets(0.5, 0)
    assert message_for(empty, 0.95, MIN_SUPPORT, own=True) == (
        "no reliable rule: the best rule found matches no training rows other than the "
        "applicant's own, so its precision cannot be measured"
    )
    small = Support(rows=2, hits=2)
    assert small.precision == 1.0 and not small.meets(0.5, MIN_SUPPORT)
    assert "covers only 2 training rows" in str(message_for(small, 0.95, MIN_SUPPORT, own=False))
    wide = Support(rows=59, hits=59)
    assert wide.meets(0.95, MIN_SUPPORT) and not Support(rows=58, hits=58).meets(0.95, MIN_SUPPORT)
    assert message_for(wide, 0.95, MIN_SUPPORT, own=False) is None
