"""The body of a rebuild, and its report as ``rebuild.service`` writes it.

A report holds what was checked, in order, up to where the rebuild stopped: the data version
read again, the environment and spec against the recorded ones, the training, the artifact
against the registered one, the decision replayed on the rebuilt model, and every prediction
compared; then the verdict, with the reason when it failed. Keys of steps never reached are
absent.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from core.responses import Body, JsonValue, Number, Scalar
from lineage.models import RunStatus


class Hashes(Body):
    md5: str
    sha256: str


class DataCheck(Body):
    repo: str = Field(description="Hidden as [server path] from roles that may not see paths")
    path: str
    commit: str
    recorded: Hashes
    in_local_cache: bool | None
    read: Hashes | None = Field(description="null when the data could not be read")
    matched: bool


class TextChange(Body):
    recorded: str | None
    current: str | None


class CountChange(Body):
    recorded: int | None
    current: int | None


class EnvironmentChange(Body):
    recorded: dict[str, str] | None
    current: dict[str, str] | None


class EnvironmentDiff(Body):
    """Every package whose version differs, and each of these that differs."""

    packages: dict[str, TextChange] = Field(description="Package -> its two versions")
    python: TextChange | None = None
    implementation: TextChange | None = None
    platform: TextChange | None = None
    machine: TextChange | None = None
    cpu_count: CountChange | None = None
    env: EnvironmentChange | None = None


class SpecHashes(Body):
    recorded: str | None
    now: str


class ParamChange(Body):
    recorded: JsonValue
    rebuilt: JsonValue


class SpecDiff(Body):
    spec_sha256: SpecHashes
    spec_matches_record: bool
    params: dict[str, ParamChange] = Field(description="Estimator parameters that differ")
    seeds: dict[str, int] | None


class Training(Body):
    fit_s: float
    original_fit_s: Number | None


class ArtifactIdentity(Body):
    sha256: str | None = Field(
        default=None, description="An MLflow import's: its native file's (none for skops)"
    )
    fingerprint: str | None = None
    format: str | None = Field(default=None, description="An MLflow import's native format")


class ArtifactCheck(Body):
    recorded: ArtifactIdentity
    rebuilt: ArtifactIdentity
    bytes_identical: bool | None = Field(
        description="None for an imported skops Pipeline, compared by its fingerprint"
    )
    fingerprint_identical: bool


class LoggedScore(Body):
    label: Scalar | None
    score: float | None


class RebuiltScore(Body):
    label: Scalar
    score: float


class DecisionReplay(Body):
    decision_id: str
    logged: LoggedScore
    rebuilt: RebuiltScore
    replays_identically: bool


class LabelScore(Body):
    label: str
    score: float


class ValidationExample(Body):
    row: int
    recorded: LabelScore
    rebuilt: LabelScore


class ValidationComparison(Body):
    rows: int
    split_matches_record: bool | None = Field(
        default=None, description="None for an MLflow import, scored on every row instead"
    )
    scope: str | None = None
    changed: int
    max_score_difference: float
    examples: list[ValidationExample]


class LoggedLabel(Body):
    label: str | None
    score: float | None


class DecisionExample(Body):
    decision_id: str
    logged: LoggedLabel
    rebuilt: LabelScore


class DecisionsComparison(Body):
    rows: int
    changed: int
    examples: list[DecisionExample]


class Predictions(Body):
    validation: ValidationComparison
    decisions: DecisionsComparison


class Problem(Body):
    code: str
    message: str


class ImportRecipe(Body):
    estimator: str
    input: str | None = None
    params: dict[str, str] | None = Field(
        default=None, description="The run's params the estimator takes, as MLflow holds them"
    )
    params_not_taken: list[str] | None = None
    rows: int
    features: list[str]


class ImportedRun(Body):
    run_id: str
    digest: str = Field(description="The MLflow digest of the data version's rows")


class RebuildReport(Body):
    model: str
    version: int
    decision_id: str | None
    original_duration_s: Number | None = None
    data: DataCheck | None = None
    environment: EnvironmentDiff | None = None
    spec: SpecDiff | None = None
    training: Training | None = None
    recipe: ImportRecipe | None = Field(
        default=None, description="An MLflow import: the training re-run from its run's record"
    )
    mlflow: ImportedRun | None = None
    artifact: ArtifactCheck | None = None
    decision: DecisionReplay | None = Field(default=None, description="A decision's rebuild")
    predictions: Predictions | None = Field(
        default=None, description="When the artifact differs: every prediction compared"
    )
    verdict: str = Field(description="identical, equivalent, diverged or failed")
    reason: Problem | None = Field(default=None, description="Why it failed")
    stopped: Problem | None = Field(default=None, description="When it was stopped")
    duration_s: float | None = None
    duration_ratio: float | None = Field(default=None, description="Against the original run")


class RebuildPublic(Body):
    id: int
    model: str
    version: int
    decision_id: str | None
    status: RunStatus
    progress: float
    message: str
    verdict: str | None = Field(
        description="identical, equivalent, diverged or failed; null until finished"
    )
    report: RebuildReport | None
    executor: str
    created_at: datetime
    created_by: str
    started_at: datetime | None
    finished_at: datetime | None
