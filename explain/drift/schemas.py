"""The body of GET /drift, as ``explain.drift.service.report`` builds it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from core.responses import Body

Verdict = Literal["drifted", "not_drifted", "insufficient_data"]


class Histogram(Body):
    """Both sides on the grid the test used: the counts of each bin, in order."""

    labels: list[str] = Field(
        description='Bins: "< a", "[a, b)", ">= b" or categories, "other", then "missing"'
    )
    training: list[int]
    live: list[int]


class FeatureDrift(Body):
    """One feature's live inputs against the training rows."""

    type: Literal["numeric", "categorical"]
    n: int
    missing: int
    missing_rate: float
    training_missing_rate: float
    test: str
    statistic: float
    p_value: float
    p_value_method: Literal["exact", "asymptotic", "monte_carlo"]
    min_expected_count: float
    psi: float
    psi_null_quantile: float = Field(
        description="The PSI a window of this size reaches without drift (over the permutations)"
    )
    psi_threshold_used: float
    bins: int
    histogram: Histogram
    p_value_holm: float
    verdict: Literal["drifted", "not_drifted", "insufficient_data"]
    reason: str
    drifted: bool


class TrainingDataset(Body):
    id: int
    name: str
    version: int
    commit: str
    sha256: str


class TrainingData(Body):
    dataset: TrainingDataset
    rows: int
    source: str


class VersionDrift(Body):
    """The window's decisions of one model version against its own training rows."""

    model: str
    version: int
    n: int
    training: TrainingData
    verdict: Verdict
    verdict_reasons: list[str]
    features: dict[str, FeatureDrift] = Field(description="Feature name -> its comparison")
    drifted: bool
    drifted_features: list[str]
    alpha: float
    psi_threshold: float
    psi_null_quantile_level: float
    min_samples: int
    resamples: int
    seed: int
    correction: str
    method: str


class DriftReport(Body):
    endpoint: str
    since: datetime | None
    until: datetime | None
    n: int
    verdict: Verdict
    verdict_reasons: list[str]
    drifted: bool
    versions: list[VersionDrift]
    method: str | None
