from __future__ import annotations

import numpy as np
import pytest

from lineage.input_schema import InputSchema, positive_proba, to_frame
from lineage.spec import parse_spec
from lineage.synthetic import demo_spec, generate_loans
from lineage.training import train
from serving.fastpath import compile_pipeline, probe_rows
from serving.model_cache import fast_path_or_reason

ESTIMATORS = [
    ("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 30}, {}),
    ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 10}, {}),
    (
        "sklearn.ensemble.GradientBoostingClassifier",
        {"n_estimators": 10},
        {
            "numeric": {"impute": "mean", "scale": "minmax"},
            "categorical": {"impute": "most_frequent", "encode": "ordinal"},
        },
    ),
    (
        "sklearn.tree.DecisionTreeClassifier",
        {"max_depth": 5},
        {"numeric": {"impute": "median", "scale": "robust"}},
    ),
    ("xgboost.XGBClassifier", {"n_estimators": 30, "max_depth": 3}, {}),
    ("lightgbm.LGBMClassifier", {"n_estimators": 30, "num_leaves": 15}, {}),
]


@pytest.mark.parametrize(("class_path", "params", "transforms"), ESTIMATORS)
def test_compiled_path_gives_the_pipelines_numbers_to_the_bit(
    class_path: str, params: dict, transforms: dict
) -> None:
    raw = demo_spec(dataset={"id": 1}, seed=3)
    raw["estimator"] = {"class": class_path, "params": params}
    raw["transforms"] = transforms
    outcome = train(parse_spec(raw), generate_loans(1500, seed=2))
    schema = InputSchema.from_document(outcome.input_schema)
    fast = compile_pipeline(outcome.pipeline, schema)
    assert fast is not None
    rows = generate_loans(300, seed=11).to_dict(orient="records") + probe_rows(schema)
    expected = positive_proba(outcome.pipeline, to_frame(schema, rows), schema)
    assert np.array_equal(fast(rows), expected)
    assert [fast([r])[0] for r in rows[:20]] == list(expected[:20])
    assert fast_path_or_reason(outcome.pipeline, schema)[1] == "compiled"


def test_a_pipeline_it_cannot_compile_is_served_through_the_pipeline_with_the_reason() -> None:
    raw = demo_spec(dataset={"id": 1}, seed=3)
    raw["estimator"] = {"class": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {}}
    raw["transforms"] = {"overrides": {"income": {"bins": 4}}}  # a KBinsDiscretizer step
    outcome = train(parse_spec(raw), generate_loans(800, seed=2))
    schema = InputSchema.from_document(outcome.input_schema)
    fast, reason = fast_path_or_reason(outcome.pipeline, schema)
    assert fast is None and reason == "not compiled: unsupported KBinsDiscretizer"


def test_unknown_pipelines_are_not_compiled() -> None:
    from sklearn.linear_model import LogisticRegression

    assert compile_pipeline(LogisticRegression(), {"features": []}) is None
