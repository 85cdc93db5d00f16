"""Shadow models: scored on live traffic off the request path, logged, never answered.

Each shadow decision is linked to the live decision it shadows, so the two can be compared
(``govern_shadow_disagreements_total`` counts the labels that differ).
"""

from __future__ import annotations

import logging

from serving import metrics
from serving.payload import DecisionPayload, Outlier, ScoredBy
from serving.schemas import ShadowConfig
from serving.scoring import Planned
from serving.state import Serving
from serving.validation import canonical_features, check_features

log = logging.getLogger("govern.serving")


def run_shadows(
    serving: Serving,
    shadows: list[ShadowConfig],
    planned: list[Planned],
    live: list[DecisionPayload],
) -> None:
    """Score every shadow on the inputs it accepts and log its decisions (in the shadow pool)."""
    endpoint = live[0].endpoint
    try:
        payloads = []
        for shadow in shadows:
            payloads += _shadow_decisions(serving, shadow, planned, live)
        if payloads:
            serving.log.submit(payloads).result(timeout=60)
    except Exception:
        log.exception("shadow scoring failed for endpoint %s", endpoint)


def _shadow_decisions(
    serving: Serving,
    shadow: ShadowConfig,
    planned: list[Planned],
    live: list[DecisionPayload],
) -> list[DecisionPayload]:
    model = serving.model(shadow.model, shadow.version)
    # The live model checked the input; the shadow takes what it uses of it, and ignores the
    # rest (a challenger may have dropped a feature).
    schema = model.input_schema
    usable = [
        (item, parent)
        for item, parent in zip(planned, live, strict=True)
        if not check_features(
            schema, item.instance.features, elsewhere=frozenset(item.instance.features)
        )
    ]
    if not usable:
        return []
    rows = [canonical_features(schema, item.instance.features) for item, _ in usable]
    scores = model.scores(rows)
    outliers = model.outlier_fields(rows) if serving.settings.ood_scoring else [{}] * len(rows)
    scored_by = ScoredBy(name=model.name, version=model.version, sha256=model.sha256)
    payloads = []
    for (item, parent), score, outlier in zip(usable, scores, outliers, strict=True):
        label = model.label_for(score)
        if str(label) != str(item.label):
            metrics.SHADOW_DISAGREEMENTS.labels(
                parent.endpoint, model.name, str(model.version)
            ).inc()
        metrics.DECISIONS.labels(parent.endpoint, model.name, str(model.version), "shadow").inc()
        payloads.append(
            DecisionPayload.shadow(
                parent=parent,
                model=scored_by,
                label=label,
                score=score,
                outlier=Outlier.of(outlier),
            )
        )
    return payloads
