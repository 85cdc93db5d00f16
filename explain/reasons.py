"""Adverse-action reason codes from SHAP attributions. Pure computation.

For an unfavourable decision, the features that pushed the score furthest away from the
favourable outcome, at most four (the number ECOA/Regulation B practice and FCRA notices use),
strongest first. A feature can appear only if the model scored it and its attribution really
points against the favourable outcome. The code is derived from the feature name, so it stays the
same across model versions that share the feature. The text is the spec's reason for the
applicant's value when it gives one (per category code, or for a 'high' or 'low' value of a
numeric feature: above or below the training median), else the feature's description; the
applicant's value is shown beside it, with its label.

A scorecard (``lineage.scorecard``) gives its reasons as scorecards do: the features where the
subject lost the most points against the best bin of each (``points_lost``), not from SHAP.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lineage.input_schema import FeatureEntry, InputSchema, category_key, to_frame

MAX_REASONS = 4


def reason_code(feature: str) -> str:
    return "R-" + re.sub(r"[^A-Z0-9]+", "_", feature.upper()).strip("_")


def reason_text(feature: FeatureEntry, value: Any) -> str:
    """The words for one adverse reason: the spec's text for this value, else the description."""
    texts = feature.reasons or {}
    default = feature.description or feature.name.replace("_", " ")
    if value is None or not texts:
        return str(default)
    if not feature.numeric:
        return str(texts.get(category_key(value), default))
    median = feature.observed_median
    if median is None or value == median:
        return str(default)
    return str(texts.get("high" if value > median else "low", default))


def adverse_action_reasons(
    schema: InputSchema,
    attributions: dict[str, Any],
    label: Any,
    favourable: Any,
    features: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    if str(label) == str(favourable):
        return {
            "favourable": True,
            "label": label,
            "reasons": [],
            "message": "the decision was favourable; there is no adverse action to explain",
        }
    if schema.scorecard is not None:
        return _scorecard_reasons(schema, label, dict(features or {}))
    # A positive attribution pushes towards the positive class. When the favourable class is the
    # negative one, the signs turn.
    sign = -1.0 if str(favourable) == str(schema.positive_class) else 1.0
    described = schema.by_name
    against = sorted(
        (
            (sign * float(value), name)
            for name, value in attributions["values"].items()
            if name in described and sign * float(value) > 0
        ),
        key=lambda item: (-item[0], item[1]),
    )
    values = dict(features or {})
    reasons = _ranked(schema, against, values, "contribution")
    return {
        "favourable": False,
        "label": label,
        "reasons": reasons,
        "space": attributions["space"],
        "message": f"{len(reasons)} principal reason(s), strongest first, from SHAP attributions",
    }


def _ranked(
    schema: InputSchema, against: list[tuple[float, str]], values: dict[str, Any], measure: str
) -> list[dict[str, Any]]:
    described = schema.by_name
    return [
        {
            "rank": rank,
            "code": reason_code(name),
            "feature": name,
            "text": reason_text(described[name], values.get(name)),
            "value": values.get(name),
            "value_label": described[name].value_label(values.get(name)),
            measure: round(weight, 12),
        }
        for rank, (weight, name) in enumerate(against[:MAX_REASONS], start=1)
    ]


def _scorecard_reasons(schema: InputSchema, label: Any, values: dict[str, Any]) -> dict[str, Any]:
    """A scorecard's reasons: the features where the subject lost the most points against the
    best bin of each, as scorecard lenders give them. The same for every seed: no sampling."""
    card = schema.scorecard
    assert card is not None
    row = {str(k): v for k, v in to_frame(schema, [values]).iloc[0].items()}
    points = card.points(row)
    lost = card.points_lost(row)
    against = sorted(
        ((value, name) for name, value in lost.items() if value > 1e-9),
        key=lambda item: (-item[0], item[1]),
    )
    reasons = _ranked(schema, against, values, "points_lost")
    return {
        "favourable": False,
        "label": label,
        "reasons": reasons,
        "space": "scorecard points",
        "scorecard": {
            "score": round(sum(points.values()), 6),
            "points": {name: round(value, 6) for name, value in points.items()},
        },
        "message": f"{len(reasons)} principal reason(s), most points lost first, from the "
        "scorecard's points per bin",
    }
