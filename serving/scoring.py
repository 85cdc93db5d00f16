"""Scoring a request: route each instance, check it against its model's input schema, score.

Runs in a worker thread (it loads models and computes). Every instance is checked before any
is scored, so a batch is either refused whole, naming every field at fault, or scored whole.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInput, field_list
from serving import metrics
from serving.model_cache import LoadedModel
from serving.payload import Outlier
from serving.routing import choose_route
from serving.schemas import EndpointConfigDocument, Instance, PredictRequest, RouteConfig
from serving.state import Resident, Serving
from serving.validation import (
    canonical_context,
    canonical_features,
    check_context,
    check_features,
)


class RequestRejected(InvalidInput):
    """A predict request refused with 422; it is logged as a rejected attempt, never a decision."""


@dataclass
class Planned:
    """One instance, the route and model chosen for it, and once scored, the model's answer."""

    instance: Instance
    route: RouteConfig
    model: LoadedModel
    score: float = 0.0
    label: Any = None
    outlier: Outlier | None = None


def plan(
    serving: Serving, endpoint: str, request: PredictRequest, resident: Resident | None = None
) -> list[Planned]:
    """Every instance routed, checked, put in canonical form and scored; RequestRejected (with
    every problem found) if any instance does not fit its model. With ``resident`` (what
    ``Serving.resident`` found in memory) it reads nothing else."""
    planned = _routed(serving, endpoint, request, resident)
    for item in planned:
        schema = item.model.input_schema
        item.instance.features = canonical_features(schema, item.instance.features)
        if item.instance.context is not None:
            item.instance.context = canonical_context(item.instance.context, schema.protected)
    _score(serving, planned)
    return planned


def _endpoint_features(
    serving: Serving, config: EndpointConfigDocument, resident: Resident | None
) -> frozenset[str]:
    """With more than one route, every feature some route's model uses: an application the
    endpoint takes is taken by each of its routes, which ignore what they do not use."""
    if len(config.routes) == 1:
        return frozenset()
    models = (
        resident.models.values()
        if resident is not None
        else [serving.model(r.model, r.version) for r in config.routes]
    )
    return frozenset(name for m in models for name in m.input_schema.feature_names)


def _routed(
    serving: Serving, endpoint: str, request: PredictRequest, resident: Resident | None
) -> list[Planned]:
    config = resident.config if resident is not None else serving.config_for(endpoint)
    elsewhere = _endpoint_features(serving, config, resident)
    planned = []
    problems: list[dict[str, str]] = []
    many = request.instances is not None
    for i, instance in enumerate(request.as_instances()):
        route = choose_route(endpoint, config, instance.subject_id, serving.rng)
        model = (
            resident.models[(route.model, route.version)]
            if resident is not None
            else serving.model(route.model, route.version)
        )
        prefix = f"instances.{i}." if many else ""
        protected = model.input_schema.protected
        problems += check_features(
            model.input_schema, instance.features, f"{prefix}features", elsewhere
        )
        problems += check_context(instance.context, f"{prefix}context", protected)
        planned.append(Planned(instance=instance, route=route, model=model))
    if problems:
        fields = field_list([p["field"] for p in problems])
        raise RequestRejected(f"invalid input: {fields}", details=problems)
    return planned


def _score(serving: Serving, planned: list[Planned]) -> None:
    """Score in one call per model and route, not one per instance."""
    by_model: dict[str, list[Planned]] = {}
    for item in planned:
        by_model.setdefault(item.model.sha256 + item.route.name, []).append(item)
    for items in by_model.values():
        model = items[0].model
        rows = [it.instance.features for it in items]
        scores = model.scores(rows)
        for item, score in zip(items, scores, strict=True):
            item.score = score
            item.label = model.label_for(score)
        if serving.settings.ood_scoring:
            started = time.perf_counter()
            for item, outlier in zip(items, model.outlier_fields(rows), strict=True):
                item.outlier = Outlier.of(outlier)
            metrics.OOD_SCORING.observe(time.perf_counter() - started)
