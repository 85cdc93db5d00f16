"""Checking one instance against a model version's recorded input schema. Pure.

Returns every problem, each naming its field, so a caller can fix a request in one go.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from core.audit.chain import is_finite_json
from lineage.input_schema import (
    FeatureEntry,
    InputSchema,
    ProtectedEntry,
    category_key,
    category_value,
)

MAX_CONTEXT_KEYS = 100
MAX_STRING = 1000


def check_features(
    schema: InputSchema,
    features: dict[str, Any],
    prefix: str = "features",
    elsewhere: frozenset[str] = frozenset(),
) -> list[dict[str, str]]:
    """The problems of ``features`` for this model. A feature the model does not use is unknown
    unless it is in ``elsewhere``: a feature another model of the endpoint uses (a challenger
    that dropped a feature still takes the applications the champion takes; it ignores it)."""
    problems: list[dict[str, str]] = []
    known = schema.by_name
    for name in features:
        if name not in known and name not in elsewhere:
            problems.append({"field": f"{prefix}.{name}", "message": "unknown feature"})
    for name, feature in known.items():
        field = f"{prefix}.{name}"
        if name not in features and not feature.nullable:
            problems.append({"field": field, "message": "missing feature"})
            continue
        value = features.get(name)
        if value is None or _is_fill(feature, value):
            if not feature.nullable:
                problems.append({"field": field, "message": "must not be null"})
        elif feature.numeric:
            problems.extend(_check_number(field, value, feature))
        else:
            problems.extend(_check_category(field, value, feature))
    return problems


def canonical_features(schema: InputSchema, features: dict[str, Any]) -> dict[str, Any]:
    """Checked features as they are logged and scored: a category as the data has it (the code
    2 for 2.0 or "2"), and a missing value, given as null, left out, or given as the text the
    training imputer fills in, as null. Call only after ``check_features`` found nothing."""
    result: dict[str, Any] = {}
    for feature in schema.features:
        name = feature.name
        value = features.get(name)
        if value is None or _is_fill(feature, value):
            result[name] = None
        elif not feature.numeric:
            result[name] = _as_declared(feature, value)
        else:
            result[name] = value
    return result


def _is_fill(feature: FeatureEntry, value: Any) -> bool:
    """The text a categorical imputer puts in a gap ("missing") is a gap for a nullable feature."""
    if feature.numeric or not feature.nullable:
        return False
    policy = feature.missing
    recorded = policy is not None and "fill_value" in policy.model_fields_set
    fill = policy.fill_value if policy is not None and recorded else "missing"
    return isinstance(value, str) and value == fill and value not in feature.codes


def _as_declared(feature: FeatureEntry, value: Any) -> Any:
    return feature.codes.get(category_key(value), category_value(value))


def _check_number(field: str, value: Any, feature: FeatureEntry) -> list[dict[str, str]]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [{"field": field, "message": f"must be a number, got {type(value).__name__}"}]
    if isinstance(value, float) and not math.isfinite(value):
        return [
            {"field": field, "message": "must be a finite number (NaN and infinity are refused)"}
        ]
    if isinstance(value, int) and abs(value) > 2**53:
        return [{"field": field, "message": "integer too large to score exactly"}]
    bounds = feature.bounds
    if bounds is not None and not (bounds[0] <= value <= bounds[1]):
        return [
            {"field": field, "message": f"{value} is outside the bounds [{bounds[0]}, {bounds[1]}]"}
        ]
    return []


def _check_category(field: str, value: Any, feature: FeatureEntry) -> list[dict[str, str]]:
    """A category is a string or an integer code (a float equal to one is that code), as the
    data has it."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (isinstance(value, str) or number):
        return [
            {
                "field": field,
                "message": f"must be a category (text or integer code), got {type(value).__name__}",
            }
        ]
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return [{"field": field, "message": f"{value} is not a category code (not an integer)"}]
    if isinstance(value, str) and len(value) > MAX_STRING:
        return [{"field": field, "message": f"longer than {MAX_STRING} characters"}]
    codes = feature.codes
    if feature.unseen == "reject" and category_key(value) not in codes:
        allowed = ", ".join(feature.value_label(c) for c in list(codes.values())[:20])
        return [{"field": field, "message": f"unseen category {value!r}; known: {allowed}"}]
    return []


def check_context(
    context: dict[str, Any] | None,
    prefix: str = "context",
    protected: Sequence[ProtectedEntry] = (),
) -> list[dict[str, str]]:
    """Scalars only, bounded; and each protected attribute the model's schema declares (other
    than one that is a feature: its value is the feature's) has a value of its declared type,
    among its declared or learned values, or within its bins."""
    problems = []
    context = context or {}
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
    if not problems:
        for attribute in protected:
            if not attribute.feature:
                problems.extend(_check_protected(prefix, context, attribute))
    return problems


def _check_protected(
    prefix: str, context: dict[str, Any], attribute: ProtectedEntry
) -> list[dict[str, str]]:
    name = attribute.name
    field = f"{prefix}.{name}"
    value = context.get(name)
    if value is None:
        if attribute.required:
            return [{"field": field, "message": "this protected attribute is required"}]
        return []
    if attribute.type == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return [{"field": field, "message": f"must be a number, got {value!r}"}]
        bins = attribute.bins
        if bins and not (bins[0] <= value < bins[-1]):
            return [
                {
                    "field": field,
                    "message": f"{value} is outside the declared bins [{bins[0]:g}, {bins[-1]:g})",
                }
            ]
        return []
    values = attribute.values
    if values is None:
        return []
    known = {category_key(v) for v in values}
    if isinstance(value, bool) or category_key(value) not in known:
        allowed = ", ".join(repr(v) for v in values[:30])
        return [{"field": field, "message": f"{value!r} is not one of the values {allowed}"}]
    return []


def canonical_context(
    context: dict[str, Any] | None,
    protected: Sequence[ProtectedEntry],
) -> dict[str, Any]:
    """A checked context with each protected value as declared (the code 2 for "2" or 2.0)."""
    result = dict(context or {})
    for attribute in protected:
        name = attribute.name
        if result.get(name) is not None and attribute.values is not None:
            codes = {category_key(v): v for v in attribute.values}
            result[name] = codes.get(category_key(result[name]), result[name])
    return result
