"""One explanation of one input by one method: the dispatch, shared by the server process and
the explanation worker processes (``explain.pool``). Pure: a model context in, a result out."""

from __future__ import annotations

from typing import Any

from explain import anchors, attributions, counterfactuals, robustness
from explain.context import ModelContext

# Methods that sample (many model calls, seconds of CPU): these run in the worker processes.
SAMPLING = frozenset({"anchor", "counterfactual", "robustness"})


def compute(
    context: ModelContext,
    features: dict[str, Any],
    label: Any,
    method: str,
    params: dict[str, Any],
) -> dict[str, Any]:
    seed = int(params["seed"])
    if method == "shap":
        return attributions.explain_shap(context, features, seed)
    if method == "anchor":
        return anchors.explain_anchor(context, features, label, float(params["threshold"]), seed)
    if method == "robustness":
        return robustness.assess(context, features, label, seed, float(params["fragile_below"]))
    return counterfactuals.find_counterfactuals(context, features, label, int(params["k"]), seed)
