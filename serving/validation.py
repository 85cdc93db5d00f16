"""Checking one instance against a model version's recorded input schema. Pure.

Returns every problem, each naming its field, so a caller can fix a request in one go.
"""

from __future__ import annotations

import math
from typing import Any

from governance.audit.chain import is_finite_json

MAX_CONTEXT_KEYS = 100
MAX_STRING = 1000


def check_features(
    schema: dict[str, Any], features: dict[str, Any], prefix: str = "features"
) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []
    known = {f["name"]: f for f in schema["features"]}
    for name in features:
        if name not in known:
            problems.append({"field": f"{prefix}.{name}", "message": "unknown feature"})
    for name, feature in known.items():
        field = f"{prefix}.{name}"
        if name not in features:
            problems.append({"field": field, "message": "missing feature"})
            continue
        value = features[name]
        if value is None:
            problems.append({"field": field, "message": "must not be null"})
        elif feature["type"] == "numeric":
            problems.extend(_check_number(field, value, feature))
        else:
            problems.extend(_check_category(field, value, feature))
    return problems


def _check_number(field: str, value: Any, feature: dict[str, Any]) -> list[dict[str, str]]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [{"field": field, "message": f"must be a number, got {type(value).__name__}"}]
    if isinstance(value, float) and not math.isfinite(value):
        return [
            {"field": field, "message": "must be a finite number (NaN and infinity are refused)"}
        ]
    if isinstance(value, int) and abs(value) > 2**53:
        return [{"field": field, "message": "integer too large to score exactly"}]
    bounds = feature.get("bounds")
    if bounds is not None and not (bounds[0] <= value <= bounds[1]):
        return [
            {"field": field, "message": f"{value} is outside the bounds [{bounds[0]}, {bounds[1]}]"}
        ]
    return []


def _check_category(field: str, value: Any, feature: dict[str, Any]) -> list[dict[str, str]]:
    if not isinstance(value, str):
        return [
            {"field": field, "message": f"must be a string category, got {type(value).__name__}"}
        ]
    if len(value) > MAX_STRING:
        return [{"field": field, "message": f"longer than {MAX_STRING} characters"}]
    if feature.get("unseen") == "reject" and value not in feature.get("categories", []):
        allowed = ", ".join(feature.get("categories", [])[:20])
        return [{"field": field, "message": f"unseen category {value!r}; known: {allowed}"}]
    return []


def check_context(context: dict[str, Any] | None, prefix: str = "context") -> list[dict[str, str]]:
    if context is None:
        return []
    problems = []
    if len(context) > MAX_CONTEXT_KEYS:
        problems.append({"field": prefix, "message": f"at most {MAX_CONTEXT_KEYS} keys"})
    for key, value in context.items():
        if isinstance(value, dict | list):
            problems.append(
                {"field": f"{prefix}.{key}", "message": "context values must be scalars"}
            )
        elif not is_finite_json(value):
            problems.append({"field": f"{prefix}.{key}", "message": "must be finite"})
        elif isinstance(value, str) and len(value) > MAX_STRING:
            problems.append(
                {"field": f"{prefix}.{key}", "message": f"longer than {MAX_STRING} characters"}
            )
    return problems
