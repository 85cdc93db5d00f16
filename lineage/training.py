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

from core.errors import InvalidInput
from lineage.input_schema import (
    InputSchema,
    build_input_schema,
    category_key,
    frame_from_table,
    positive_proba,
    same_class,
)
from lineage.outliers import fit_detector
from lineage.pipeline import build_pipeline, missing_value_policy, scorecard_of
from lineage.proxies import proxy_report
from lineage.spec import YAML_BOOLEAN_HINT, FeatureType, TrainingSpec

Progress = Callable[[float, str], None]


def _quiet(_fraction: float, _message: str) -> None:
    return None


@dataclass
class TrainingOutcome:
    pipeline: Pipeline
    input_schema: dict[str, Any]  # the document to store (``InputSchema.from_document`` reads it)
    metrics: dict[str, Any]
    metrics_by_group: dict[str, Any]
    gate: dict[str, Any]
    split: dict[str, Any]
    seeds: dict[str, int]
    fit_seconds: float
    outlier_detector: dict[str, Any]
    proxies: dict[str, Any] | None = None
    scorecard: dict[str, Any] | None = None  # a scorecard's points table (``lineage.scorecard``)


def _class_hint(declared: Any, values: list[Any]) -> str:
    """Why a declared class matched nothing, when YAML's typing is the likely cause."""
    seen = ", ".join(repr(v) for v in values[:20])
    if isinstance(declared, bool):
        spellings = {True: {"yes", "y", "true", "on"}, False: {"no", "n", "false", "off"}}
        as_text = [v for v in values if str(v).strip().lower() in spellings[declared]]
        if as_text:
            return (
                f"the spec gives the boolean {declared}, but the column holds {as_text[0]!r}: "
                f"{YAML_BOOLEAN_HINT}"
            )
    if isinstance(declared, int | float) and not isinstance(declared, bool):
        as_text = [v for v in values if isinstance(v, str) and _same_number(v, declared)]
        if as_text:
            return (
                f"the spec gives the number {declared!r}, but the column holds the text "
                f"{as_text[0]!r}: quote it in the spec"
            )
    return f"seen classes: {seen}"


def _same_number(text: str, number: float) -> bool:
    try:
        return float(text) == float(number)
    except ValueError:
        return False


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
    positive = spec.target.positive_class
    matches = [v for v in values if same_class(v, positive)]
    if not matches:
        raise InvalidInput(
            f"positive class {positive!r} never occurs in {spec.target.column!r}",
            details=[{"field": "target.positive_class", "message": _class_hint(positive, values)}],
        )
    if len(values) != 2:
        raise InvalidInput(
            f"the target must have exactly two classes; {spec.target.column!r} has {len(values)}",
            details=[{"field": "target.column", "message": f"seen classes: {values[:20]}"}],
        )
    favourable = spec.target.favourable_class
    if favourable is not None and not any(same_class(v, favourable) for v in values):
        raise InvalidInput(
            f"favourable class {favourable!r} never occurs in {spec.target.column!r}",
            details=[
                {"field": "target.favourable_class", "message": _class_hint(favourable, values)}
            ],
        )
    negative = next(v for v in values if not same_class(v, positive))
    y = np.asarray([same_class(v, positive) for v in column.to_numpy()], dtype=int)
    return y, [negative, matches[0]]


def check_against_data(spec: TrainingSpec, frame: pd.DataFrame) -> None:
    """What can be checked against the data before a run is accepted: the target's two classes
    (with YAML's booleans named when they are the cause), and every category code the spec's
    labels, reasons, order and transitions name. Raises ``InvalidInput``."""
    _y, classes = binary_target(spec, frame)
    build_input_schema(spec, frame, classes)


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
    return pd.Series(
        [category_key(v) if pd.notna(v) else "missing" for v in column.to_numpy()],
        index=column.index,
        dtype=object,
    )


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
    schema: InputSchema,
) -> tuple[dict[str, Any], dict[str, Any]]:
    X = frame_from_table(schema, frame[spec.feature_names])
    proba = positive_proba(pipeline, X, schema)
    predicted = schema.positive(proba).astype(int)
    metrics = _scores(y, proba, predicted)
    favourable_is_positive = same_class(schema.positive_class, spec.favourable_class)
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


def proxies_for(
    spec: TrainingSpec,
    pipeline: Any,
    frame: pd.DataFrame,
    schema: InputSchema,
    seed: int,
) -> dict[str, Any] | None:
    """How well each feature, and the model's score, predicts each protected attribute on
    ``frame`` (the training rows): see ``lineage.proxies``. None without protected attributes."""
    if not spec.protected:
        return None
    X = frame_from_table(schema, frame[spec.feature_names])
    score = np.asarray(positive_proba(pipeline, X, schema), dtype=float)
    groups = {
        p.name: group_labels(spec, frame, p.name).reset_index(drop=True) for p in spec.protected
    }
    return proxy_report(
        X.reset_index(drop=True),
        {f.name: f.type.value for f in spec.features},
        groups,
        score,
        seed=seed,
    )


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
    document = build_input_schema(spec, frame.iloc[train_idx], classes)
    # Typed for the columns the fit sees; typed again below, with the fit's missing-value policy.
    X_train = frame_from_table(
        InputSchema.from_document(document), frame.iloc[train_idx][spec.feature_names]
    )

    progress(0.40, "fitting")
    pipeline = build_pipeline(spec)
    started = time.perf_counter()
    fit_params: dict[str, Any] = {}
    if spec.mitigation is not None:
        # The reduction reads the protected groups of its training rows, and only at fit.
        groups = group_labels(spec, frame.iloc[train_idx], spec.mitigation.attribute)
        fit_params["model__sensitive_features"] = groups.to_numpy()
    pipeline.fit(X_train, y[train_idx], **fit_params)
    fit_seconds = time.perf_counter() - started
    for feature, (name, policy) in zip(
        document["features"], missing_value_policy(pipeline, spec).items(), strict=True
    ):
        assert feature["name"] == name
        feature["missing"] = policy
    scorecard = scorecard_of(pipeline, spec, same_class(spec.favourable_class, classes[1]))
    if scorecard is not None:
        document["scorecard"] = scorecard.model_dump(mode="json")
    schema = InputSchema.from_document(document)

    progress(0.70, "evaluating")
    valid = frame.iloc[valid_idx]
    metrics, by_group = evaluate(spec, pipeline, valid, y[valid_idx], schema)
    train_metrics, _ = evaluate(spec, pipeline, frame.iloc[train_idx], y[train_idx], schema)
    metrics = {"validation": metrics, "train": train_metrics}
    gate = apply_gate(spec, metrics["validation"])
    progress(0.80, "fitting the out-of-distribution detector")
    detector = fit_detector(schema, frame.iloc[train_idx], valid)
    progress(0.85, "measuring how well each feature predicts each protected attribute")
    proxies = proxies_for(spec, pipeline, frame.iloc[train_idx], schema, spec.seeds.split)
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
        input_schema=document,
        metrics=metrics,
        metrics_by_group=by_group,
        gate=gate,
        split=split,
        seeds=spec.seeds.model_dump(),
        fit_seconds=fit_seconds,
        outlier_detector=detector,
        proxies=proxies,
        scorecard=document.get("scorecard"),
    )
