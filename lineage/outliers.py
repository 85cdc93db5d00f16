"""Out-of-distribution scoring: a Mahalanobis detector fitted on a model's training rows. Pure.

The detector works on its own encoding of the raw features, so it is the same for every model
and needs nothing from the fitted Pipeline: numeric features standardized by the training mean
and standard deviation (a missing value counts as the mean), categorical features one-hot over
the training categories (an unseen value is all zeros). The covariance is the Ledoit-Wolf
shrinkage estimate, which stays invertible when one-hot columns are collinear. An input's score
is its Mahalanobis distance from the training mean; it is an outlier when the score exceeds the
``quantile`` of the training rows' scores. The detector is a small JSON document stored in the
model version's lineage; scoring one row is a few vector operations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.covariance import LedoitWolf

from lineage.input_schema import InputSchema, category_key

METHOD = "mahalanobis-ledoit-wolf"
DEFAULT_QUANTILE = 0.995


def _encoding(schema: InputSchema, train: pd.DataFrame) -> list[dict[str, Any]]:
    encoding = []
    for feature in schema.features:
        name = feature.name
        if feature.numeric:
            column = pd.to_numeric(train[name], errors="coerce").astype("float64")
            mean = float(column.mean()) if column.notna().any() else 0.0
            std = float(column.std(ddof=0)) if column.notna().sum() > 1 else 0.0
            encoding.append(
                {"name": name, "type": "numeric", "mean": mean, "std": std if std > 0 else 1.0}
            )
        else:
            encoding.append(
                {
                    "name": name,
                    "type": "categorical",
                    "categories": [category_key(c) for c in feature.categories or []],
                }
            )
    return encoding


def encode(encoding: Sequence[Mapping[str, Any]], columns: Mapping[str, Sequence[Any]]) -> Any:
    """Columns of raw values -> the detector's matrix, one row per input."""
    parts: list[NDArray[np.float64]] = []
    for feature in encoding:
        values = columns[feature["name"]]
        if feature["type"] == "numeric":
            x = np.array(
                [np.nan if v is None else float(v) for v in values], dtype=np.float64
            ).reshape(-1, 1)
            x = np.where(np.isnan(x), feature["mean"], x)
            parts.append((x - feature["mean"]) / feature["std"])
        else:
            categories = feature["categories"]
            lookup = {c: i for i, c in enumerate(categories)}
            block = np.zeros((len(values), len(categories)), dtype=np.float64)
            for i, value in enumerate(values):
                k = lookup.get(None if value is None else category_key(value))
                if k is not None:
                    block[i, k] = 1.0
            parts.append(block)
    return np.hstack(parts)


def frame_columns(frame: pd.DataFrame, names: Sequence[str]) -> dict[str, list[Any]]:
    return {name: [None if pd.isna(v) else v for v in frame[name].tolist()] for name in names}


class Detector:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.encoding = document["encoding"]
        self.names = [f["name"] for f in self.encoding]
        self.location = np.asarray(document["location"], dtype=np.float64)
        self.precision = np.asarray(document["precision"], dtype=np.float64)
        self.threshold = float(document["threshold"])

        # For scoring a few rows at a time on the predict path: where each feature lands.
        self._numeric: list[tuple[str, int, float, float]] = []
        self._categorical: list[tuple[str, int, dict[str, int]]] = []
        offset = 0
        for feature in self.encoding:
            if feature["type"] == "numeric":
                self._numeric.append((feature["name"], offset, feature["mean"], feature["std"]))
                offset += 1
            else:
                lookup = {c: i for i, c in enumerate(feature["categories"])}
                self._categorical.append((feature["name"], offset, lookup))
                offset += len(lookup)
        self.width = offset

    def _distances(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        centred = matrix - self.location
        squared = ((centred @ self.precision) * centred).sum(axis=1)
        return np.asarray(np.sqrt(np.maximum(squared, 0.0)), dtype=np.float64)

    def _encode_rows(self, rows: Sequence[Mapping[str, Any]]) -> NDArray[np.float64]:
        """``encode`` for a handful of records, without building columns first."""
        matrix = np.zeros((len(rows), self.width), dtype=np.float64)
        for i, row in enumerate(rows):
            out = matrix[i]
            for name, at, mean, std in self._numeric:
                value = row.get(name)
                out[at] = 0.0 if value is None else (float(value) - mean) / std
            for name, at, lookup in self._categorical:
                value = row.get(name)
                k = None if value is None else lookup.get(category_key(value))
                if k is not None:
                    out[at + k] = 1.0
        return matrix

    def scores(self, rows: Sequence[Mapping[str, Any]]) -> NDArray[np.float64]:
        """One distance per record, each computed alone: a decision's logged score never
        depends on what else was in its request."""
        out = np.empty(len(rows), dtype=np.float64)
        for i, vector in enumerate(self._encode_rows(rows)):
            centred = vector - self.location
            out[i] = np.sqrt(max(float(centred @ self.precision @ centred), 0.0))
        return out

    def frame_scores(self, frame: pd.DataFrame) -> NDArray[np.float64]:
        return self._distances(encode(self.encoding, frame_columns(frame, self.names)))

    def is_outlier(self, score: float) -> bool:
        return bool(score > self.threshold)


def fit_detector(
    schema: InputSchema,
    train: pd.DataFrame,
    validation: pd.DataFrame | None = None,
    quantile: float = DEFAULT_QUANTILE,
) -> dict[str, Any]:
    """Fit on the training rows; report how often training and validation rows are flagged."""
    encoding = _encoding(schema, train)
    names = [f["name"] for f in encoding]
    matrix = encode(encoding, frame_columns(train, names))
    covariance = LedoitWolf().fit(matrix)
    document: dict[str, Any] = {
        "method": METHOD,
        "space": "numeric features standardized by the training mean and standard deviation; "
        "categorical features one-hot over the training categories (unseen: all zeros)",
        "encoding": encoding,
        "location": covariance.location_.tolist(),
        "precision": covariance.precision_.tolist(),
        "shrinkage": float(covariance.shrinkage_),
        "quantile": quantile,
        "threshold": 0.0,
        "n_train": len(train),
    }
    detector = Detector(document)
    train_scores = detector._distances(matrix)
    document["threshold"] = float(np.quantile(train_scores, quantile))
    detector.threshold = document["threshold"]
    document["training_outlier_rate"] = float(np.mean(train_scores > detector.threshold))
    if validation is not None and len(validation):
        valid_scores = detector.frame_scores(validation)
        document["n_validation"] = len(validation)
        document["validation_outlier_rate"] = float(np.mean(valid_scores > detector.threshold))
    return document


def detector_of(lineage: Mapping[str, Any]) -> Detector | None:
    document = lineage.get("outlier_detector")
    return Detector(document) if document else None
