"""Fit, evaluate and gate a spec on a DataFrame. Pure computation: no database, no files."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from governance.errors import InvalidInput
from lineage.outliers import fit_detector
from lineage.pipeline import build_pipeline
from lineage.schema import build_input_schema, frame_from_table, positive_proba
from lineage.spec import FeatureType, TrainingSpec

Progress = Callable[[float, str], None]


def _quiet(_fraction: float, _message: str) -> None:
    return None


@dataclass
class TrainingOutcome:
    pipeline: Pipeline
    input_schema: dict[str, Any]
    metrics: dict[str, Any]
    metrics_by_group: dict[str, Any]
    gate: dict[str, Any]
    split: dict[str, Any]
    seeds: dict[str, int]
    fit_seconds: float
    outlier_detector: dict[str, Any]


def binary_target(spec: TrainingSpec, frame: pd.DataFrame) -> tuple[NDArray[Any], list[Any]]:
    """y as 0/1 (1 = positive class) and the two class labels [negative, positive]."""
    column = frame[spec.target.column]
    if column.isna().any():
        raise InvalidInput(
            f"the target column {spec.target.column!r} has "
            f"{int(column.isna().sum())} missing values",
            details=[{"field": "target.column", "message": "target values must not be missing"}],
        )
    values = list(pd.unique(column))
    positive = str(spec.target.positive_class)
    matches = [v for v in values if str(v) == positive]
    if not matches:
        raise InvalidInput(
            f"positive class {spec.target.positive_class!r} never occurs in {spec.target.column!r}",
            details=[{"field": "target.positive_class", "message": f"seen classes: {values[:20]}"}],
        )
    if len(values) != 2:
        raise InvalidInput(
            f"the target must have exactly two classes; {spec.target.column!r} has {len(values)}",
            details=[{"field": "target.column", "message": f"seen classes: {values[:20]}"}],
        )
    negative = next(v for v in values if str(v) != positive)
    y = (column.astype(str) == positive).to_numpy(dtype=int)
    return y, [negative, matches[0]]


def group_labels(spec: TrainingSpec, frame: pd.DataFrame, attribute: str) -> pd.Series:
    protected = next(p for p in spec.protected if p.name == attribute)
    column = frame[attribute]
    if protected.type is FeatureType.numeric:
        bins = protected.bins
        numeric = pd.to_numeric(column, errors="coerce")
        if bins:
            labels = [f"[{bins[i]:g}, {bins[i + 1]:g})" for i in range(len(bins) - 1)]
            return (
                pd.cut(numeric, bins=bins, labels=labels, right=False)
                .astype(object)
                .fillna("unbinned")
            )
        return pd.qcut(numeric, q=4, duplicates="drop").astype(str)
    return column.astype(object).where(column.notna(), "missing").astype(str)


def _scores(y: NDArray[Any], proba: NDArray[Any], predicted: NDArray[Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"n": len(y), "positive_rate": float(y.mean()) if len(y) else None}
    result["accuracy"] = float(accuracy_score(y, predicted)) if len(y) else None
    result["brier"] = float(brier_score_loss(y, proba)) if len(y) else None
    result["roc_auc"] = float(roc_auc_score(y, proba)) if len(set(y.tolist())) == 2 else None
    return result


def _fairness_rates(
    y: NDArray[Any], favourable_pred: NDArray[Any], favourable_true: NDArray[Any]
) -> dict[str, Any]:
    pos = favourable_true == 1
    neg = ~pos
    return {
        "selection_rate": float(favourable_pred.mean()) if len(y) else None,
        "true_positive_rate": float(favourable_pred[pos].mean()) if pos.any() else None,
        "false_positive_rate": float(favourable_pred[neg].mean()) if neg.any() else None,
    }


def evaluate(
    spec: TrainingSpec,
    pipeline: Pipeline,
    frame: pd.DataFrame,
    y: NDArray[Any],
    schema: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    X = frame_from_table(schema, frame[spec.feature_names])
    proba = positive_proba(pipeline, X, schema)
    predicted = (proba >= spec.decision.threshold).astype(int)
    metrics = _scores(y, proba, predicted)
    favourable_is_positive = str(spec.favourable_class) == str(schema["positive_class"])
    fav_pred = predicted if favourable_is_positive else 1 - predicted
    fav_true = y if favourable_is_positive else 1 - y
    metrics.update(_fairness_rates(y, fav_pred, fav_true))
    by_group: dict[str, Any] = {}
    for protected in spec.protected:
        groups = group_labels(spec, frame, protected.name).to_numpy()
        by_group[protected.name] = {}
        for group in sorted(set(groups.tolist())):
            mask = groups == group
            entry = _scores(y[mask], proba[mask], predicted[mask])
            entry.update(_fairness_rates(y[mask], fav_pred[mask], fav_true[mask]))
            by_group[protected.name][str(group)] = entry
    return metrics, by_group


def apply_gate(spec: TrainingSpec, metrics: dict[str, Any]) -> dict[str, Any]:
    value = metrics.get(spec.gate.metric)
    if value is None:
        passed = False
    elif spec.gate.higher_is_better:
        passed = value >= spec.gate.threshold
    else:
        passed = value <= spec.gate.threshold
    comparison = ">=" if spec.gate.higher_is_better else "<="
    return {
        "metric": spec.gate.metric,
        "threshold": spec.gate.threshold,
        "value": value,
        "rule": f"{spec.gate.metric} {comparison} {spec.gate.threshold}",
        "passed": bool(passed),
    }


def split_frame(
    spec: TrainingSpec, frame: pd.DataFrame, y: NDArray[Any]
) -> tuple[NDArray[Any], NDArray[Any]]:
    indices = np.arange(len(frame))
    train_idx, valid_idx = train_test_split(
        indices,
        test_size=spec.validation.fraction,
        random_state=spec.seeds.split,
        stratify=y if spec.validation.stratify else None,
    )
    return np.sort(train_idx), np.sort(valid_idx)


def indices_digest(indices: NDArray[Any]) -> str:
    return hashlib.sha256(np.asarray(indices, dtype="<i8").tobytes()).hexdigest()


def train(spec: TrainingSpec, frame: pd.DataFrame, progress: Progress = _quiet) -> TrainingOutcome:
    progress(0.30, "splitting")
    y, classes = binary_target(spec, frame)
    try:
        train_idx, valid_idx = split_frame(spec, frame, y)
    except ValueError as exc:
        raise InvalidInput(
            f"cannot split the data: {exc}",
            details=[{"field": "validation", "message": str(exc)}],
        ) from None
    schema = build_input_schema(spec, frame.iloc[train_idx], classes)
    X_train = frame_from_table(schema, frame.iloc[train_idx][spec.feature_names])

    progress(0.40, "fitting")
    pipeline = build_pipeline(spec)
    started = time.perf_counter()
    pipeline.fit(X_train, y[train_idx])
    fit_seconds = time.perf_counter() - started

    progress(0.70, "evaluating")
    valid = frame.iloc[valid_idx]
    metrics, by_group = evaluate(spec, pipeline, valid, y[valid_idx], schema)
    train_metrics, _ = evaluate(spec, pipeline, frame.iloc[train_idx], y[train_idx], schema)
    metrics = {"validation": metrics, "train": train_metrics}
    gate = apply_gate(spec, metrics["validation"])
    progress(0.80, "fitting the out-of-distribution detector")
    detector = fit_detector(schema, frame.iloc[train_idx], valid)
    split = {
        "n_rows": len(frame),
        "n_train": len(train_idx),
        "n_validation": len(valid_idx),
        "fraction": spec.validation.fraction,
        "stratify": spec.validation.stratify,
        "seed": spec.seeds.split,
        "validation_indices_sha256": indices_digest(valid_idx),
    }
    return TrainingOutcome(
        pipeline=pipeline,
        input_schema=schema,
        metrics=metrics,
        metrics_by_group=by_group,
        gate=gate,
        split=split,
        seeds=spec.seeds.model_dump(),
        fit_seconds=fit_seconds,
        outlier_detector=detector,
    )
