"""Typed views of the JSON documents a model version records, for the bodies that show them:
its metrics, its gate, how it handles missing values, and the lineage summary that travels
with each decision (``lineage.registry.lineage_summary``).

They describe what training (``lineage.training``, ``lineage.runner``) and registration
(``lineage.external``) write. Figures are ``Number``: a recorded integer stays an integer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.responses import Body, IsoTime, JsonValue, Number, Scalar
from lineage.models import Stage
from lineage.scorecard import Scorecard


class SplitMetrics(Body):
    """Figures on one set of rows (a split, a group of it, or every row)."""

    n: int
    positive_rate: Number | None
    accuracy: Number | None
    brier: Number | None
    roc_auc: Number | None = Field(description="null when the rows hold a single class")
    selection_rate: Number | None
    true_positive_rate: Number | None
    false_positive_rate: Number | None


class TrainingMetrics(Body):
    """``validation`` and ``train`` for a version trained here; ``all_rows`` and ``note`` for
    one registered from outside (scored by govern on every row of its data version)."""

    validation: SplitMetrics | None = None
    train: SplitMetrics | None = None
    all_rows: SplitMetrics | None = None
    note: str | None = None


class RunError(Body):
    """Why a run failed (``lineage.runner``): meant for ``RunPublic.error``."""

    code: str
    message: str
    details: JsonValue = Field(description="The error's details, as the failing step gave them")


class GateResult(Body):
    metric: str | None
    threshold: Number | None
    value: Number | None
    rule: str
    passed: bool


class MissingValues(Body):
    """One feature: how many training rows lacked it, whether predict accepts null, and what
    the fitted model puts in its place (``impute``, and the learned ``fill_value``)."""

    missing_in_training: int
    nullable: bool
    impute: str | None = None
    fill_value: Scalar | None = None


class SummaryDataset(Body):
    id: int | None
    name: str | None
    version: int | None
    repo: str | None
    path: str | None
    commit: str | None
    md5: str | None
    sha256: str | None


class OutlierDetectorSummary(Body):
    method: str | None
    quantile: Number | None
    threshold: Number | None
    validation_outlier_rate: Number | None


class LineageSummary(Body):
    """The part of a version's lineage that travels with each decision."""

    model_version_created_at: IsoTime
    source: str = Field(description="run (trained here) or external (registered)")
    run_id: int | None
    artifact_sha256: str
    fingerprint: str
    estimator: str | None = Field(description="The estimator's class path")
    dataset: SummaryDataset
    seeds: dict[str, int] | None
    gate: GateResult | None
    code: dict[str, JsonValue] | None = Field(
        description="The code version: recorded at training, or as an external model declared it"
    )
    outlier_detector: OutlierDetectorSummary
    trained_at: IsoTime | None
    stage: Stage


class RecordedDataset(Body):
    """The data version a model was trained on, as its lineage records it
    (``lineage.registration.dataset_lineage``)."""

    id: int | None
    name: str
    version: int
    repo: str
    path: str
    rev: str
    commit: str
    md5: str
    sha256: str
    size_bytes: int
    format: str
    row_count: int
    columns: list[dict[str, str]]


class RecordedSplit(Body):
    """How a run split its rows into training and validation (``lineage.training``)."""

    n_rows: int
    n_train: int
    n_validation: int
    fraction: Number
    stratify: bool
    seed: int
    validation_indices_sha256: str


class RecordedReduction(Body):
    """fairlearn's exponentiated gradient (``lineage.mitigation``): the refitted predictors it
    weighs, their weights, its distance from the constraint on the training rows, its fits."""

    predictors: int
    weights: list[float]
    best_gap: float
    oracle_calls: int


class RecordedEstimator(Body):
    class_: str = Field(alias="class", description="The estimator's class path")
    params: dict[str, JsonValue] = Field(
        description="Its hyperparameters: as fitted here, or as an external model declared them"
    )
    reduction: RecordedReduction | None = Field(
        default=None, description="Trained under a fairness constraint: what the reduction found"
    )


class OutlierDetector(Body):
    """The fitted outlier detector (``lineage.outliers.fit_detector``)."""

    method: str
    space: str
    encoding: list[dict[str, JsonValue]]
    location: list[Number]
    precision: list[list[Number]]
    shrinkage: Number
    quantile: Number
    threshold: Number | None
    n_train: int
    training_outlier_rate: Number
    n_validation: int | None = None
    validation_outlier_rate: Number | None = None


class UploadedModel(Body):
    format: str = Field(description="xgboost-json, xgboost-ubj or lightgbm-text")
    sha256: str
    size_bytes: int


class RecordedArtifact(Body):
    """The stored artifact (``lineage.registration.StoredArtifact``)."""

    sha256: str
    size_bytes: int
    format: str
    fingerprint: str
    uploaded_skops_sha256: str | None = Field(
        default=None, description="An uploaded model: the hash of the file as it was uploaded"
    )
    uploaded: UploadedModel | None = Field(
        default=None,
        description="An XGBoost or LightGBM model uploaded in its library's own format: that "
        "file, kept in the artifact store under its sha256",
    )


class RecordedTiming(Body):
    """When the training ran (``lineage.registration.Timing``); ``fit_s`` for a run only."""

    started_at: IsoTime | None
    finished_at: IsoTime | None
    duration_s: Number | None
    fit_s: Number | None = None


class DataVerification(Body):
    """Whether the data version is proven to be the data an MLflow run trained on."""

    status: Literal["verified", "unverified"]
    reason: str
    mlflow_inputs: list[dict[str, JsonValue]]
    govern_digest: str | None = None


class MlflowRecord(Body):
    """An imported version's MLflow record (``lineage.mlflow_import``)."""

    tracking_uri: str = Field(description="Without any credentials")
    model: str
    version: int
    model_uri: str
    model_id: str | None
    flavour: Literal["sklearn", "xgboost", "lightgbm"]
    model_class: str
    artifact_format: str
    data_file: dict[str, str]
    run_id: str
    experiment_id: str | None
    run_name: str | None
    status: str | None
    user: str | None
    started_at: IsoTime | None
    finished_at: IsoTime | None
    params: dict[str, str] = Field(description="As MLflow holds them: text")
    metrics: dict[str, JsonValue]
    tags: dict[str, str]
    git_commit: str | None
    source_name: str | None
    datasets: list[dict[str, JsonValue]]
    data_verification: DataVerification


class LineageDocument(Body):
    """A version's whole lineage document, as recorded: by a run (``lineage.runner``) or on
    registration of an external model (``lineage.external``). A key only one of them writes has
    a default and is shown only when recorded."""

    schema_version: int
    source: str | None = Field(
        default=None, description="external (registered) or mlflow (imported); none for a run"
    )
    run_id: int | None
    dataset: RecordedDataset
    spec: dict[str, JsonValue] = Field(
        description="The spec with every default filled in (a run), or what an external "
        "model declared"
    )
    spec_sha256: str | None = None
    seeds: dict[str, int] | None
    split: RecordedSplit | None = None
    estimator: RecordedEstimator
    environment: dict[str, JsonValue] = Field(
        description="Python, platform and packages: captured at training, or as declared"
    )
    code: dict[str, JsonValue] | None
    metrics: TrainingMetrics
    metrics_by_group: dict[str, JsonValue] = Field(
        description="Protected attribute -> group -> its figures; cells below the reporting "
        "threshold withheld for roles that may not see them"
    )
    gate: GateResult | None
    outlier_detector: OutlierDetector | None
    proxies: dict[str, JsonValue] | None = Field(
        description="How well each feature predicts each protected attribute"
    )
    missing_values: dict[str, MissingValues] | None = None
    scorecard: Scorecard | None = Field(
        default=None, description="A scorecard's points per bin (lineage.scorecard)"
    )
    mlflow: MlflowRecord | None = Field(
        default=None, description="An imported version's MLflow model version and run"
    )
    artifact: RecordedArtifact
    timing: RecordedTiming
