"""Boundary probing: many near-identical inputs from one key, scored close to the threshold. Pure.

Someone mapping a model's decision boundary, or extracting the model, sends many inputs that
differ a little from one another and land near the threshold. Normal applicants are spread out.
A key is flagged when, within the window, at least ``min_requests`` of its requests on one model
version (decisions, and replays of logged decisions with changed inputs) scored within
``score_band`` of the threshold, and each of those has another such input
from the same key within ``near_distance``: the largest difference over numeric features, as a
fraction of the feature's training range, with every categorical value equal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from lineage.input_schema import FeatureEntry, InputSchema

# Categorical values are coded this far apart, so a different category is never "near".
_CATEGORY_GAP = 1e6


@dataclass(frozen=True)
class ProbeRules:
    window_s: float
    min_requests: int
    score_band: float
    near_distance: float


def _scale(feature: FeatureEntry) -> float:
    low, high = feature.observed_range or feature.bounds or (0.0, 1.0)
    return float(high - low) if high > low else 1.0


def _coordinates(schema: InputSchema, inputs: Sequence[Mapping[str, Any]]) -> Any:
    columns = []
    for feature in schema.features:
        values = [row.get(feature.name) for row in inputs]
        if feature.numeric:
            scale = _scale(feature)
            columns.append([np.nan if v is None else float(v) / scale for v in values])
        else:
            codes: dict[str, int] = {}
            columns.append([codes.setdefault(str(v), len(codes)) * _CATEGORY_GAP for v in values])
    matrix = np.asarray(columns, dtype=np.float64).T
    return np.nan_to_num(matrix, nan=-_CATEGORY_GAP)


def near_duplicate_mask(
    schema: InputSchema,
    inputs: Sequence[Mapping[str, Any]],
    near_distance: float,
) -> list[bool]:
    """For each input, whether another input lies within ``near_distance`` (range units,
    L-infinity)."""
    if len(inputs) < 2:
        return [False] * len(inputs)
    coordinates = _coordinates(schema, inputs)
    neighbours = NearestNeighbors(n_neighbors=2, metric="chebyshev").fit(coordinates)
    distances, _ = neighbours.kneighbors(coordinates)
    return [bool(d) for d in distances[:, 1] <= near_distance]


def near_duplicates(
    schema: InputSchema,
    inputs: Sequence[Mapping[str, Any]],
    near_distance: float,
) -> int:
    """How many inputs have another input within ``near_distance`` (range units, L-infinity)."""
    return sum(near_duplicate_mask(schema, inputs, near_distance))
