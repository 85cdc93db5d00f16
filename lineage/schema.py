"""A model version's input schema: what predict accepts, recorded from the spec and the data.

It also turns records into the DataFrame the fitted Pipeline expects, identically at training,
serving, explanation and rebuild time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from lineage.spec import FeatureType, TrainingSpec


def _label(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def build_input_schema(
    spec: TrainingSpec, frame: pd.DataFrame, classes: list[Any]
) -> dict[str, Any]:
    features = []
    for feature in spec.features:
        entry: dict[str, Any] = {
            "name": feature.name,
            "type": feature.type.value,
            "description": feature.description,
            "immutable": feature.immutable,
            "direction": feature.direction.value,
        }
        if feature.type is FeatureType.numeric:
            entry["bounds"] = list(feature.bounds) if feature.bounds else None
            column = pd.to_numeric(frame[feature.name], errors="coerce")
            entry["observed_range"] = [float(column.min()), float(column.max())]
        else:
            observed = sorted({str(v) for v in frame[feature.name].dropna().unique()})
            entry["categories"] = sorted(feature.categories) if feature.categories else observed
            entry["unseen"] = feature.unseen
        features.append(entry)
    return {
        "features": features,
        "protected": [p.model_dump(mode="json") for p in spec.protected],
        "target": spec.target.column,
        "classes": [_label(c) for c in classes],
        "positive_class": _label(classes[1]),
        "favourable_class": spec.favourable_class,
        "threshold": spec.decision.threshold,
    }


def favourable_label(schema: Mapping[str, Any]) -> Any:
    """The class that is good for the subject (defaults to the positive class)."""
    favourable = schema.get("favourable_class")
    return schema["positive_class"] if favourable is None else favourable


def to_frame(schema: Mapping[str, Any], records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows -> the DataFrame the Pipeline was fitted on: numeric as float, categories as str."""
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
                    np.nan if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
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
            values[present] = [str(v) for v in column.to_numpy()[present]]
            data[feature["name"]] = pd.Series(values, dtype=object)
    return pd.DataFrame(data)
