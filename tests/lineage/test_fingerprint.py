from __future__ import annotations

import pickle

import pytest
import skops.io as sio

from lineage.fingerprint import fingerprint
from lineage.input_schema import InputSchema, build_input_schema, frame_from_table
from lineage.pipeline import build_pipeline
from lineage.spec import parse_spec
from lineage.synthetic import demo_spec, generate_loans
from lineage.training import binary_target

ESTIMATORS = [
    ("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 20}),
    ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 5}),
    ("sklearn.ensemble.GradientBoostingClassifier", {"n_estimators": 10}),
    ("sklearn.linear_model.LogisticRegression", {"max_iter": 300}),
]


def _fit(class_path: str, params: dict, seed: int):
    raw = demo_spec(dataset={"id": 1}, seed=seed)
    raw["estimator"] = {"class": class_path, "params": params}
    spec = parse_spec(raw)
    frame = generate_loans(600, seed=4)
    y, classes = binary_target(spec, frame)
    schema = InputSchema.from_document(build_input_schema(spec, frame, classes))
    return build_pipeline(spec).fit(frame_from_table(schema, frame[spec.feature_names]), y)


@pytest.mark.parametrize(("class_path", "params"), ESTIMATORS)
def test_fingerprint_survives_serialisation_and_refits(class_path: str, params: dict) -> None:
    model = _fit(class_path, params, seed=1)
    print_ = fingerprint(model)
    assert fingerprint(pickle.loads(pickle.dumps(model))) == print_
    data = sio.dumps(model)
    assert fingerprint(sio.loads(data, trusted=sio.get_untrusted_types(data=data))) == print_
    assert fingerprint(_fit(class_path, params, seed=1)) == print_


@pytest.mark.parametrize(("class_path", "params"), ESTIMATORS[:3])
def test_fingerprint_changes_with_what_was_learned(class_path: str, params: dict) -> None:
    assert fingerprint(_fit(class_path, params, seed=1)) != fingerprint(
        _fit(class_path, params, seed=2)
    )


def test_table_and_record_conversions_agree() -> None:
    from lineage.input_schema import to_frame

    spec = parse_spec(demo_spec(dataset={"id": 1}))
    frame = generate_loans(300, seed=9)
    frame.loc[3, "purpose"] = None
    frame.loc[4, "income"] = None
    _, classes = binary_target(spec, frame)
    schema = InputSchema.from_document(build_input_schema(spec, frame, classes))
    by_table = frame_from_table(schema, frame[spec.feature_names])
    by_records = to_frame(schema, frame[spec.feature_names].to_dict(orient="records"))
    import pandas as pd

    pd.testing.assert_frame_equal(by_table, by_records)
