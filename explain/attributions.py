"""SHAP attributions for one logged input, per original feature. Pure computation.

* Tree models: ``shap.TreeExplainer`` on the fitted estimator, ``tree_path_dependent``: exact,
  no sampling, with the expectation taken over the training rows as the trees recorded them
  (node cover). Boosted trees are explained in log-odds (their raw margin); forests and single
  trees in probability of the positive class. ``space`` says which.
* Other models: ``shap.PermutationExplainer``, model-agnostic, on the log-odds, with a background
  of rows drawn with the recorded seed from the model's own training rows. Antithetic
  permutations keep it exactly additive.

Either way the attribution is computed on the preprocessed columns and then summed back to the
feature each column came from, so a one-hot encoded feature gets one value.
"""

from __future__ import annotations

import functools
from importlib import metadata
from typing import Any

import numpy as np
import sklearn
from numpy.typing import NDArray

from explain.context import GLOBAL_RNG, ModelContext
from lineage.pipeline import margin
from serving.fastpath import THREADS

BACKGROUND_ROWS = 100
PERMUTATION_EVALS = 2000
# Whose tree explainer explains the margin (log-odds), not the probability.
_LOG_ODDS = {
    "sklearn.ensemble.HistGradientBoostingClassifier",
    "sklearn.ensemble.GradientBoostingClassifier",
    "xgboost.XGBClassifier",
    "lightgbm.LGBMClassifier",
}


@functools.cache
def library_versions() -> dict[str, str]:
    """Read once per process: looking up package metadata costs milliseconds each time."""
    return {
        "shap": metadata.version("shap"),
        "alibi": metadata.version("alibi"),
        "art": metadata.version("adversarial-robustness-toolbox"),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
    }


def _dense(x: Any) -> NDArray[np.float64]:
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)


def background(context: ModelContext, seed: int) -> NDArray[np.float64]:
    def build() -> NDArray[np.float64]:
        rng = np.random.default_rng(seed)
        n = min(BACKGROUND_ROWS, len(context.train))
        rows = np.sort(rng.choice(len(context.train), size=n, replace=False))
        return _dense(context.preprocess.transform(context.train.iloc[rows]))

    result: NDArray[np.float64] = context.cached(("background", seed), build)
    return result


def _tree(context: ModelContext, xt: NDArray[np.float64]) -> dict[str, Any]:
    import shap  # imported on first use: it takes seconds, and most processes never explain

    explainer = context.cached(("shap-tree",), lambda: shap.TreeExplainer(context.estimator))
    values = np.asarray(explainer.shap_values(xt, check_additivity=False), dtype=np.float64)
    base = np.asarray(explainer.expected_value, dtype=np.float64).reshape(-1)
    positive = context.positive_index
    log_odds = context.estimator_path in _LOG_ODDS
    if values.ndim == 3:  # (rows, columns, classes): one set of values per class
        values, base_value = values[0, :, positive], float(base[positive])
    else:  # one margin, for classes_[1]
        values, base_value = values[0], float(base[0])
        if positive == 0:
            values, base_value = -values, -base_value
    # One row: one OpenMP thread (waking a thread team costs more than the work).
    with THREADS.limit(limits=1, user_api="openmp"):
        if log_odds:
            raw = float(np.asarray(margin(context.estimator, xt)).reshape(-1)[0])
            output = raw if positive == 1 else -raw
        else:
            output = float(context.estimator.predict_proba(xt)[0, positive])
    return {
        "method": "shap.TreeExplainer (tree_path_dependent, exact)",
        "space": "log_odds" if log_odds else "probability",
        "values": values,
        "base_value": base_value,
        "output": output,
        "seed": None,
        "background": {
            "source": context.rows_source,
            "how": "the trees' own record of the training rows (node cover); no sampling",
        },
    }


def _permutation(context: ModelContext, xt: NDArray[np.float64], seed: int) -> dict[str, Any]:
    import shap

    sign = 1.0 if context.positive_index == 1 else -1.0
    estimator = context.estimator
    log_odds = hasattr(estimator, "decision_function")

    def margin(x: NDArray[np.float64]) -> NDArray[np.float64]:
        if not log_odds:  # a model without a margin is explained in probability
            proba = estimator.predict_proba(x)[:, context.positive_index]
            return np.asarray(proba, dtype=np.float64)
        return sign * np.asarray(estimator.decision_function(x), dtype=np.float64)

    masker = shap.maskers.Independent(background(context, seed), max_samples=BACKGROUND_ROWS)
    with GLOBAL_RNG:
        explainer = shap.PermutationExplainer(margin, masker, seed=seed)
        explanation = explainer(xt, max_evals=PERMUTATION_EVALS, silent=True)
    return {
        "method": "shap.PermutationExplainer (model-agnostic, antithetic permutations)",
        "space": "log_odds" if log_odds else "probability",
        "values": np.asarray(explanation.values[0], dtype=np.float64),
        "base_value": float(np.asarray(explanation.base_values).reshape(-1)[0]),
        "output": float(margin(xt)[0]),
        "seed": seed,
        "background": {
            "source": context.rows_source,
            "how": f"{min(BACKGROUND_ROWS, len(context.train))} rows drawn with seed {seed}",
        },
    }


def explain_shap(context: ModelContext, features: dict[str, Any], seed: int) -> dict[str, Any]:
    xt = _dense(context.model.transform([features]))
    raw = _tree(context, xt) if context.kind == "tree" else _permutation(context, xt, seed)
    per_feature = dict.fromkeys(context.input_schema.feature_names, 0.0)
    for owner, value in zip(context.owners, raw["values"], strict=True):
        per_feature[owner] += float(value)
    total = raw["base_value"] + float(np.sum(raw["values"]))
    return {
        "base_value": raw["base_value"],
        "values": per_feature,
        "output": raw["output"],
        "space": raw["space"],
        "positive_class": context.input_schema.positive_class,
        "additivity_error": abs(total - raw["output"]),
        "seed": raw["seed"],
        "method": raw["method"],
        "background": raw["background"],
        "versions": library_versions(),
    }
