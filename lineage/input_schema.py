"""A model version's input schema: what predict accepts, recorded from the spec and the data.

It also turns records into the DataFrame the fitted Pipeline expects, identically at training,
serving, explanation and rebuild time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidInput
from lineage.spec import Feature, FeatureType, TrainingSpec, category_text

# What the model sees for a category: its text form (``category_text``), so the integer code 2,
# the float 2.0 a column with gaps holds, and the string "2" are one category.
category_key = category_text


def _label(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def same_class(value: Any, declared: Any) -> bool:
    """A class in the data is the declared one: the same text (the label "1" and the code 1), or
    the same number (1 and 1.0). A boolean matches only a boolean or its own text."""
    value = _label(value)
    if str(value) == str(declared):
        return True
    numbers = (int, float)
    return (
        isinstance(value, numbers)
        and isinstance(declared, numbers)
        and not isinstance(value, bool)
        and not isinstance(declared, bool)
        and float(value) == float(declared)
    )


def category_value(value: Any) -> Any:
    """A category as the data has it, as plain JSON: integral numbers as ints, else strings."""
    value = _label(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return str(value)


def category_order(value: Any) -> tuple[int, Any]:
    """Integer codes in numeric order first, then strings: a mixed list sorts without error."""
    if isinstance(value, bool):
        return (0, int(value))
    return (0, value) if isinstance(value, int) else (1, str(value))


def _categories(feature: Feature, column: pd.Series) -> list[Any]:
    if feature.categories:
        return sorted(feature.categories, key=category_order)
    observed = {category_key(v): category_value(v) for v in column.dropna().unique()}
    return sorted(observed.values(), key=category_order)


def _check_codes(feature: Feature, categories: list[Any], where: str) -> None:
    known = {category_key(c) for c in categories}
    unknown = sorted(set(feature.codes_named()) - known)
    if unknown:
        raise InvalidInput(
            f"{where} names codes the data never has: {unknown}",
            details=[{"field": where, "message": f"codes {unknown} are not among {sorted(known)}"}],
        )


def build_input_schema(
    spec: TrainingSpec, frame: pd.DataFrame, classes: list[Any]
) -> dict[str, Any]:
    """``frame``: the rows the model is fitted on (for a registered model, all of them)."""
    features = []
    for i, feature in enumerate(spec.features):
        column = frame[feature.name]
        has_missing = bool(column.isna().any())
        entry: dict[str, Any] = {
            "name": feature.name,
            "type": feature.type.value,
            "description": feature.description,
            "immutable": feature.immutable,
            "direction": feature.direction.value,
            "nullable": has_missing if feature.nullable is None else feature.nullable,
            "missing_in_training": int(column.isna().sum()),
        }
        if feature.type is FeatureType.numeric:
            entry["bounds"] = list(feature.bounds) if feature.bounds else None
            numbers = pd.to_numeric(column, errors="coerce")
            entry["observed_range"] = [float(numbers.min()), float(numbers.max())]
            median = numbers.median()
            entry["observed_median"] = float(median) if pd.notna(median) else None
            if feature.reasons:
                entry["reasons"] = dict(feature.reasons)
        else:
            entry["categories"] = _categories(feature, column)
            entry["unseen"] = feature.unseen
            _check_codes(feature, entry["categories"], f"features.{i}")
            by_key = {category_key(c): c for c in entry["categories"]}
            for name in ("labels", "reasons"):
                if getattr(feature, name):
                    entry[name] = dict(getattr(feature, name))
            if feature.order is not None:
                entry["order"] = [by_key[category_key(c)] for c in feature.order]
            if feature.transitions is not None:
                entry["transitions"] = {
                    k: [by_key[category_key(t)] for t in targets]
                    for k, targets in feature.transitions.items()
                }
        features.append(entry)
    schema: dict[str, Any] = {
        "features": features,
        "protected": [_protected_entry(spec, p, frame) for p in spec.protected],
        "target": spec.target.column,
        "classes": [_label(c) for c in classes],
        "positive_class": _label(classes[1]),
        "favourable_class": next(
            (_label(c) for c in classes if same_class(c, spec.favourable_class)),
            spec.favourable_class,
        ),
        "threshold": spec.decision.threshold,
    }
    if spec.constraints:
        schema["constraints"] = [c.model_dump() for c in spec.constraints]
    return schema


def _protected_entry(spec: TrainingSpec, protected: Any, frame: pd.DataFrame) -> dict[str, Any]:
    """As declared, and for a categorical attribute the values predict accepts: the declared
    ones, else those the data has. ``feature`` marks an attribute that is also a model input."""
    entry: dict[str, Any] = {
        k: v for k, v in protected.model_dump(mode="json").items() if v is not None
    }
    entry["feature"] = protected.name in spec.protected_features
    if protected.type is FeatureType.categorical and protected.name in frame:
        if protected.values is not None:
            entry["values"] = sorted(protected.values, key=category_order)
            entry["values_source"] = "spec"
        else:
            column = frame[protected.name].dropna()
            observed = {category_key(v): category_value(v) for v in column.unique()}
            entry["values"] = sorted(observed.values(), key=category_order)
            entry["values_source"] = "training data"
    return entry


def feature_label(feature: Mapping[str, Any], value: Any) -> str:
    """A value as a person reads it: the category's label with its code beside it."""
    if value is None:
        return "missing"
    labels = feature.get("labels") or {}
    label = labels.get(category_key(value)) if feature.get("type") == "categorical" else None
    return f"{label} ({value})" if label else str(value)


def favourable_label(schema: Mapping[str, Any]) -> Any:
    """The class that is good for the subject (defaults to the positive class)."""
    favourable = schema.get("favourable_class")
    return schema["positive_class"] if favourable is None else favourable


def to_frame(schema: Mapping[str, Any], records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows -> the DataFrame the Pipeline was fitted on: numeric as float, categories as their
    text (``category_key``), a missing value (None, or absent) as NaN."""
    rows = list(records)
    data: dict[str, Any] = {}
    for feature in schema["features"]:
        name = feature["name"]
        values = [row.get(name) for row in rows]
        if feature["type"] == "numeric":
            data[name] = pd.array(
                [np.nan if v is None else float(v) for v in values], dtype="float64"
            )
        else:
            data[name] = pd.Series(
                [
                    np.nan
                    if v is None or (isinstance(v, float) and np.isnan(v))
                    else category_key(v)
                    for v in values
                ],
                dtype=object,
            )
    return pd.DataFrame(data)


def positive_proba(pipeline: Any, frame: pd.DataFrame, schema: Mapping[str, Any]) -> Any:
    """P(positive class) for each row, whatever order the estimator keeps its classes in."""
    return pipeline.predict_proba(frame)[:, int(schema.get("positive_index", 1))]


def frame_from_table(schema: Mapping[str, Any], table: pd.DataFrame) -> pd.DataFrame:
    """The column-wise equivalent of ``to_frame`` for a whole table (training, evaluation)."""
    data: dict[str, Any] = {}
    for feature in schema["features"]:
        column = table[feature["name"]]
        if feature["type"] == "numeric":
            data[feature["name"]] = (
                pd.to_numeric(column, errors="raise").astype("float64").to_numpy()
            )
        else:
            present = column.notna().to_numpy()
            values = np.full(len(column), np.nan, dtype=object)
            values[present] = [category_key(_label(v)) for v in column.to_numpy()[present]]
            data[feature["name"]] = pd.Series(values, dtype=object)
    return pd.DataFrame(data)
