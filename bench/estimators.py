"""Estimators benchmark: what govern adds to fitting and scoring each estimator it trains.

For each estimator (scikit-learn's HistGradientBoosting and LogisticRegression, XGBoost,
LightGBM), on the same synthetic loan book:

1. **fit**: govern's training (``lineage.training.train``: split, the Pipeline the spec builds,
   evaluation overall and by group, the out-of-distribution detector, the proxies) against the
   bare library fitting the same preprocessed training rows, in process, side by side;
2. **score one row**: govern's serving path (``LoadedModel.scores``: the compiled path when it
   takes the model, else the Pipeline) against the bare estimator's ``predict_proba`` on the
   same row already preprocessed, p50 over ``--rows`` calls each;
3. whether the compiled path took the model, or why not.

    uv run python -m bench.estimators [--train 5000] [--rows 2000]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from sklearn.base import clone

from lineage.input_schema import InputSchema, frame_from_table
from lineage.spec import parse_spec
from lineage.synthetic import demo_spec, generate_loans
from lineage.training import binary_target, split_frame, train
from serving.model_cache import LoadedModel, fast_path_or_reason

ESTIMATORS: dict[str, dict[str, Any]] = {
    "sklearn.ensemble.HistGradientBoostingClassifier": {"max_iter": 120},
    "sklearn.linear_model.LogisticRegression": {"max_iter": 500},
    "xgboost.XGBClassifier": {"n_estimators": 120, "max_depth": 3},
    "lightgbm.LGBMClassifier": {"n_estimators": 120, "num_leaves": 15},
}


def _p50(call: Any, rows: list[Any]) -> float:
    times = []
    for row in rows:
        started = time.perf_counter()
        call(row)
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1000


def measure(class_path: str, params: dict[str, Any], n_train: int, n_rows: int) -> dict[str, Any]:
    raw = demo_spec(dataset={"id": 1}, seed=3)
    raw["estimator"] = {"class": class_path, "params": params}
    spec = parse_spec(raw)
    frame = generate_loans(n_train, seed=2)

    started = time.perf_counter()
    outcome = train(spec, frame)
    govern_fit = time.perf_counter() - started
    y, _classes = binary_target(spec, frame)
    train_idx, _valid = split_frame(spec, frame, y)
    schema = InputSchema.from_document(outcome.input_schema)
    preprocess = outcome.pipeline.named_steps["preprocess"]
    x_train = preprocess.transform(
        frame_from_table(schema, frame.iloc[train_idx][spec.feature_names])
    )
    bare = clone(outcome.pipeline.named_steps["model"])
    started = time.perf_counter()
    bare.fit(x_train, y[train_idx])
    bare_fit = time.perf_counter() - started

    fast, scoring = fast_path_or_reason(outcome.pipeline, schema)
    model = LoadedModel("bench", 1, "0" * 64, outcome.pipeline, schema, fast=fast, scoring=scoring)
    records = generate_loans(n_rows, seed=9)[spec.feature_names].to_dict(orient="records")
    prepared = [
        preprocess.transform(
            frame_from_table(schema, generate_loans(1, seed=9 + i)[spec.feature_names])
        )
        for i in range(min(n_rows, 200))
    ]
    estimator = outcome.pipeline.named_steps["model"]
    govern_row = _p50(lambda r: model.scores([r]), records)
    bare_row = _p50(estimator.predict_proba, prepared * (n_rows // len(prepared)))
    return {
        "estimator": class_path,
        "fit_govern_s": round(govern_fit, 3),
        "fit_bare_s": round(bare_fit, 3),
        "fit_ratio": round(govern_fit / bare_fit, 2),
        "score_row_govern_ms": round(govern_row, 4),
        "score_row_bare_ms": round(bare_row, 4),
        "score_ratio": round(govern_row / bare_row, 2),
        "scoring_path": scoring,
        "validation_roc_auc": round(outcome.metrics["validation"]["roc_auc"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    results = [measure(c, p, args.train, args.rows) for c, p in ESTIMATORS.items()]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
