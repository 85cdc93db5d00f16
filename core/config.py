"""The one settings object. Every knob is an environment variable with the ``GOV_`` prefix."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_VAR_DIR = Path("var")


class NoticeScore(BaseModel):
    """How a model's score is disclosed on a notice (FCRA section 615): its range and source;
    ``name`` is what the score is called on the notice."""

    model_config = ConfigDict(extra="forbid")

    range: tuple[float, float]
    source: str = Field(min_length=1, max_length=300)
    name: str = Field(default="credit score", min_length=1, max_length=100)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GOV_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    var_dir: Path = DEFAULT_VAR_DIR
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL. Empty means the embedded SQLite database under var_dir.",
    )
    artifact_dir: Path | None = Field(
        default=None, description="Content-addressed artifact store. Defaults to var_dir/artifacts."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Requests with a larger body get 413."
    )
    max_artifact_bytes: int = Field(
        default=256 * 1_048_576,
        ge=1024,
        description="Body limit for model version uploads, for keys whose role may upload.",
    )
    body_read_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="A request body must arrive within this many seconds, or the request gets 408.",
    )
    upload_read_timeout_s: float = Field(
        default=300.0, gt=0, le=86_400, description="The same, for model uploads."
    )
    db_connect_timeout_s: int = Field(default=3, ge=1, le=60)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    db_pool_size: int = Field(default=10, ge=1)

    signing_key_file: Path | None = Field(
        default=None,
        description="Ed25519 key that signs audit checkpoints; keep it off the database host.",
    )
    signing_public_key_file: Path | None = Field(
        default=None,
        description="The checkpoint signers' trusted public key (PEM or raw base64). Without "
        "it, or the signing key file, signatures are checked only against the key stored "
        "beside each checkpoint, and reports say so.",
    )
    predict_concurrency: int = Field(
        default=8,
        ge=1,
        le=1024,
        description="Predict calls in progress per process; more wait their turn in order.",
    )
    predict_max_inflight: int = Field(
        default=32,
        ge=1,
        le=100_000,
        description="Predict calls in progress per process, waiting included, before new ones "
        "are refused at once with 503 and Retry-After (load shedding).",
    )
    console_idle_timeout_s: int = Field(
        default=1800,
        ge=60,
        le=86_400,
        description="A console session unused this long is over; the person signs in again.",
    )
    console_session_max_s: int = Field(
        default=8 * 3600,
        ge=300,
        le=7 * 86_400,
        description="A console session ends this long after sign-in, however active.",
    )
    auth_cache_ttl_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="A key found valid is trusted this long without another database read "
        "(a revocation made through another worker process takes effect within it); 0: off.",
    )
    predict_max_inflight_per_key: int = Field(
        default=16,
        ge=1,
        le=100_000,
        description="Predict calls in progress per process for one API key; more get 429 with "
        "Retry-After, so one key can never hold every admission slot.",
    )
    ood_scoring: bool = Field(
        default=True,
        description="Score every predict input with its model version's out-of-distribution "
        "detector and log the score and is_outlier flag (off only to measure its cost).",
    )
    decision_log_max_batch: int = Field(default=256, ge=1, le=10_000)
    endpoint_cache_ttl_s: float = Field(default=1.0, ge=0.0, le=60.0)
    model_cache_size: int = Field(default=16, ge=1, le=1000)
    fairness_min_group_size: int = Field(
        default=30,
        ge=1,
        le=1_000_000,
        description="Groups with fewer decisions are reported with their counts and ratios, "
        "marked below_minimum_size; a verdict that depends on one is not_assessable.",
    )
    min_cell_size: int = Field(
        default=10,
        ge=1,
        le=1_000_000,
        description="Group figures with fewer people than this are suppressed for every role "
        "but compliance (and admin), and marked below the reporting threshold for compliance.",
    )
    robustness_fragile_below: float = Field(
        default=0.1,
        gt=0,
        le=100,
        description="A decision is fragile when a perturbation shorter than this many feature "
        "spreads (L2) flips it.",
    )
    explain_cache_size: int = Field(
        default=4,
        ge=1,
        le=100,
        description="Model versions whose training rows and fitted explainers stay in memory.",
    )
    probe_window_s: float = Field(
        default=300.0, gt=0, le=86_400, description="Boundary probing: the window scanned."
    )
    probe_min_requests: int = Field(
        default=25,
        ge=2,
        le=100_000,
        description="Boundary probing: near-duplicate, near-threshold decisions from one key "
        "on one model version within the window that raise an alert.",
    )
    probe_score_band: float = Field(
        default=0.05,
        gt=0,
        le=0.5,
        description="Boundary probing: a score this close to the threshold is near it.",
    )
    probe_near_distance: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="Boundary probing: inputs are near-duplicates when every numeric feature "
        "differs by at most this fraction of its training range and every category is equal.",
    )
    probe_scan_interval_s: float = Field(
        default=30.0,
        ge=0,
        le=86_400,
        description="Seconds between background probing scans; 0 turns the background scan off.",
    )
    drift_alpha: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="Drift: a feature's Holm-corrected p-value must be below this to be drifted "
        "(the request's alpha overrides it).",
    )
    drift_psi_threshold: float = Field(
        default=0.1,
        gt=0,
        le=10,
        description="Drift: the floor of the PSI threshold; the threshold used is the larger of "
        "it and the 99th percentile of the PSI over permutations of the training and live rows "
        "at the window's size (the request's psi_threshold overrides it).",
    )
    drift_min_samples: int = Field(
        default=30,
        ge=2,
        le=1_000_000,
        description="Drift: a model version's window with fewer decisions is insufficient_data, "
        "for every feature too (the request's min_samples overrides it).",
    )
    drift_resamples: int = Field(
        default=999,
        ge=99,
        le=99_999,
        description="Drift: seeded permutations per feature for the Monte Carlo p-values (used "
        "when an expected count is below 5) and the PSI threshold; raised when needed so the "
        "smallest p-value survives Holm's correction over the features.",
    )
    ray_address: str | None = None
    job_workers: int = Field(default=1, ge=1, le=16, description="In-process job threads.")
    job_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        le=7 * 86_400,
        description="Wall-clock limit of one training run or rebuild; past it the job's "
        "process is killed and the job fails with code 'timeout'.",
    )
    max_estimators: int = Field(
        default=2000,
        ge=1,
        le=1_000_000,
        description="Upper bound on n_estimators (forests, gradient boosting) in a spec.",
    )
    max_iterations: int = Field(
        default=10_000,
        ge=1,
        le=10_000_000,
        description="Upper bound on max_iter (histogram gradient boosting, logistic "
        "regression) in a spec.",
    )
    explain_workers: int = Field(
        default=1,
        ge=0,
        le=16,
        description="Processes (at lower CPU priority) that compute anchors, counterfactuals "
        "and robustness probes, so they never compete with predict for the server's own "
        "interpreter; 0 computes them in the server process.",
    )
    explain_concurrency_per_key: int = Field(
        default=2,
        ge=1,
        le=1000,
        description="New (uncached) explanations one key may have computing at once; more get "
        "429 with Retry-After.",
    )
    explain_rate_per_minute: int = Field(
        default=30,
        ge=1,
        le=100_000,
        description="New (uncached) explanations and rebuilds one key may start per minute; "
        "more get 429 with Retry-After.",
    )
    data_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Directories that may hold the DVC repositories datasets are read from, "
        "besides var_dir (separated by the OS path separator). Anything else is refused.",
    )
    data_remote_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Remote repository origins a dataset may name, each exactly "
        "'scheme://host' or 'scheme://host:port' (comma-separated). Empty: no remote URLs.",
    )
    mlflow_tracking_uris: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="MLflow tracking servers POST /api/v1/imports/mlflow may read from, each "
        "exactly as a caller gives it (comma-separated). Empty: imports only from the CLI.",
    )
    mlflow_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="Timeout of each request to a tracking server"
    )
    openlineage_transport: Literal["off", "file", "http"] = Field(
        default="off",
        description="Where training runs, rebuilds and LDA searches send OpenLineage run "
        "events: off, file (one JSON event per line) or http (a receiver such as Marquez).",
    )
    openlineage_file: Path | None = Field(
        default=None, description="For file: the file (default var_dir/openlineage/events.jsonl)"
    )
    openlineage_url: str | None = Field(
        default=None, description="For http: the receiver's base URL, e.g. http://marquez:5000"
    )
    openlineage_endpoint: str = Field(default="api/v1/lineage", max_length=500)
    openlineage_api_key: SecretStr | None = Field(
        default=None, description="For http: sent as a bearer token"
    )
    openlineage_timeout_s: float = Field(default=5.0, gt=0, le=120)
    openlineage_namespace: str = Field(
        default="govern", min_length=1, max_length=200, description="The jobs' namespace"
    )
    retention_days: int = Field(default=762, ge=1)
    creditor_name: str = Field(
        default="govern demo lender",
        min_length=1,
        max_length=200,
        description="The creditor named on adverse-action notices.",
    )
    creditor_address: str = Field(
        default="1 Example Street, Springfield, ST 00000",
        min_length=1,
        max_length=500,
        description="The creditor's address on adverse-action notices.",
    )
    notice_agency: str = Field(
        default="Consumer Financial Protection Bureau, 1700 G Street NW, Washington, DC 20552",
        min_length=1,
        max_length=500,
        description="The federal agency that administers ECOA compliance for this creditor, with "
        "its address, as the notice's ECOA statement names it.",
    )
    notice_templates_dir: Path | None = Field(
        default=None,
        description="A folder of notice templates an operator edits (notice.html); default: the "
        "ones shipped in governance/casework/notice_templates. Each text used is versioned.",
    )
    notice_deadline_days: int = Field(
        default=30,
        ge=1,
        le=365,
        description="Days from an adverse decision to its notice being sent (Regulation B: 30).",
    )
    notice_due_soon_days: int = Field(
        default=5,
        ge=0,
        le=365,
        description="A notice unsent this many days before it is due is listed as due soon.",
    )
    notice_watch_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="The delivery clock also watches adverse decisions without a notice, made "
        "within this many days; older ones are out of its watch.",
    )
    appeal_deadline_days: int = Field(
        default=30,
        ge=1,
        le=365,
        description="Days from an appeal being opened to its decision; later, it is overdue.",
    )
    appeal_max_document_bytes: int = Field(
        default=500_000,
        ge=1,
        le=20_000_000,
        description="The largest attached document an appeal accepts (it is hashed, not kept); "
        "the request body limit, GOV_MAX_BODY_BYTES, applies too.",
    )
    appeal_letter_shows_score: bool = Field(
        default=False,
        description="Whether the applicant's letter on an appeal shows the model's scores.",
    )
    notice_score_disclosure: dict[str, NoticeScore] = Field(
        default_factory=dict,
        description="Per model name, the FCRA section 615 disclosure of the score the decision "
        'used, e.g. {"credit": {"range": [0, 1], "source": "in-house model credit"}}. Off '
        "(empty) by default.",
    )

    @field_validator("database_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("data_roots", mode="before")
    @classmethod
    def _path_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in value.split(os.pathsep) if part.strip()]
        return value

    @field_validator("data_remote_origins", "mlflow_tracking_uris", mode="before")
    @classmethod
    def _origin_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.var_dir / 'govern.db').as_posix()}"
        if self.artifact_dir is None:
            self.artifact_dir = self.var_dir / "artifacts"
        self.predict_max_inflight_per_key = min(
            self.predict_max_inflight_per_key, self.predict_max_inflight
        )
        if self.database_url.startswith("postgresql://"):
            # Pin the driver we ship, so a plain libpq URL works as users expect.
            self.database_url = "postgresql+psycopg://" + self.database_url.removeprefix(
                "postgresql://"
            )
        return self

    @model_validator(mode="after")
    def _openlineage_needs_a_url(self) -> Settings:
        if self.openlineage_transport == "http" and not self.openlineage_url:
            raise ValueError("GOV_OPENLINEAGE_TRANSPORT=http needs GOV_OPENLINEAGE_URL")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def artifacts(self) -> Path:
        assert self.artifact_dir is not None
        return self.artifact_dir

    @property
    def signing_key_path(self) -> Path:
        return self.signing_key_file or self.var_dir / "signing.key"

    @property
    def admin_key_file(self) -> Path:
        return self.var_dir / "admin.key"

    @property
    def allowed_data_roots(self) -> list[Path]:
        """Where dataset repositories may live: var_dir and every configured data root."""
        return [Path(p).expanduser().resolve() for p in (self.var_dir, *self.data_roots)]


@lru_cache
def get_settings() -> Settings:
    return Settings()
