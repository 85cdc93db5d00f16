"""Training under a fairness constraint: fairlearn's exponentiated gradient reduction, kept as a
plain scikit-learn classifier.

``ExponentiatedGradient`` finds a randomized classifier: a weighted set of the estimator refitted
on reweighted rows, chosen so that the constraint (demographic parity, equalized odds, ...)
holds on the training rows within ``eps``. Its probability of a positive prediction for a row is
the weighted share of its predictors that predict positive. ``ReductionClassifier`` fits it and
keeps only that: the fitted predictors and their weights, so the model pickles, scores without
the protected attribute (which it reads at fit time only), and its score is the same number
fairlearn's ``_pmf_predict`` gives. Deterministic: every predictor is the seeded estimator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, clone

CONSTRAINTS = {
    "demographic_parity": "DemographicParity",
    "equalized_odds": "EqualizedOdds",
    "true_positive_rate_parity": "TruePositiveRateParity",
    "false_positive_rate_parity": "FalsePositiveRateParity",
    "error_rate_parity": "ErrorRateParity",
}


class ReductionClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """The estimator refitted under ``constraint`` on the protected groups given to ``fit``."""

    def __init__(
        self,
        estimator: Any = None,
        constraint: str = "demographic_parity",
        eps: float = 0.01,
        max_iter: int = 50,
    ) -> None:
        self.estimator = estimator
        self.constraint = constraint
        self.eps = eps
        self.max_iter = max_iter

    def fit(self, x: Any, y: NDArray[Any], sensitive_features: Any = None) -> ReductionClassifier:
        if sensitive_features is None:
            raise ValueError("a reduction is fitted with the protected groups of its rows")
        from fairlearn import reductions

        moment = getattr(reductions, CONSTRAINTS[self.constraint])()
        reduction = reductions.ExponentiatedGradient(
            clone(self.estimator), moment, eps=self.eps, max_iter=self.max_iter
        )
        reduction.fit(x, y, sensitive_features=np.asarray(sensitive_features, dtype=str))
        weights = reduction.weights_.sort_index()
        kept = [int(t) for t in weights.index if weights[t] > 0]
        self.predictors_ = [reduction.predictors_[t] for t in kept]
        self.weights_ = np.asarray([float(weights[t]) for t in kept], dtype=float)
        self.classes_ = np.unique(y)
        self.best_gap_ = float(reduction.best_gap_)
        self.n_oracle_calls_ = int(reduction.n_oracle_calls_)
        return self

    def predict_proba(self, x: Any) -> NDArray[np.float64]:
        """The weighted share of the predictors that predict the positive class."""
        positive = np.zeros(x.shape[0], dtype=float)
        for weight, predictor in zip(self.weights_, self.predictors_, strict=True):
            positive += weight * (np.asarray(predictor.predict(x)) == self.classes_[1])
        positive = np.clip(positive, 0.0, 1.0)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, x: Any) -> NDArray[Any]:
        result: NDArray[Any] = self.classes_[(self.predict_proba(x)[:, 1] >= 0.5).astype(int)]
        return result


def is_reduction(estimator: Any) -> bool:
    return isinstance(estimator, ReductionClassifier)


def reduction_summary(model: Any) -> dict[str, Any] | None:
    """What the reduction found: how many predictors it weighs, how far from the constraint it
    ended on the training rows, and how many fits it took. None for a plain estimator."""
    if not is_reduction(model):
        return None
    return {
        "predictors": len(model.predictors_),
        "weights": [round(float(w), 6) for w in model.weights_],
        "best_gap": model.best_gap_,
        "oracle_calls": model.n_oracle_calls_,
    }
