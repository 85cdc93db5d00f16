"""Register a model version trained outside govern, with its lineage.

The upload is a scikit-learn Pipeline in skops format: skops loads only the types we trust
(scikit-learn, NumPy, SciPy), so an upload can never run code the way an unpickled one could. Or
an XGBoost or LightGBM model in its library's own format (``lineage.native``): data, never code.
The stored artifact is then written by govern itself and verified by hash like any other.
"""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from sqlmodel import Session

from core.errors import InvalidInput, field_list, validation_details
from lineage import service
from lineage.artifacts import ArtifactStore
from lineage.data_sources import DataPolicy
from lineage.datasets import check_columns
from lineage.input_schema import InputSchema, build_input_schema, frame_from_table
from lineage.models import DatasetVersion, ModelVersion, RegisteredModel
from lineage.native import FORMATS, load_native
from lineage.outliers import fit_detector
from lineage.registration import (
    ModelArtifact,
    NewVersion,
    Timing,
    dataset_lineage,
    register_version,
    store_artifact,
)
from lineage.safe_skops import UnreadableArtifact, UntrustedArtifact, load_trusted
from lineage.spec import (
    MAX_PUBLIC_CONTEXT,
    ContextKey,
    DatasetRef,
    Decision,
    Feature,
    Gate,
    Protected,
    Target,
    TrainingSpec,
    check_public_context,
)
from lineage.training import apply_gate, binary_target, evaluate, proxies_for

log = logging.getLogger("govern.external")

_NOT_DECLARED = {"estimator", "seeds", "validation", "transforms"}


class ExternalArtifact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str = Field(
        pattern="^(skops|xgboost-json|xgboost-ubj|lightgbm-text)$",
        description="skops: a scikit-learn Pipeline; xgboost-json or xgboost-ubj: an XGBoost "
        "model as Booster.save_model writes it; lightgbm-text: a LightGBM model as "
        "Booster.save_model writes it. Never a pickle.",
    )
    content_base64: str = Field(min_length=1)


class ExternalRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    intended_use: str = ""
    dataset: DatasetRef | None = None
    seeds: dict[str, int] | None = None
    target: Target
    features: list[Feature] = Field(min_length=1)
    protected: list[Protected] = Field(default_factory=list)
    public_context: list[ContextKey] = Field(
        default_factory=list,
        max_length=MAX_PUBLIC_CONTEXT,
        description="As in a training spec: context keys every role reading a decision may see.",
    )
    decision: Decision = Decision()
    gate: Gate | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    code: dict[str, Any] = Field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    artifact: ExternalArtifact

    @field_validator("public_context")
    @classmethod
    def _public_never_protected(cls, value: list[str], info: ValidationInfo) -> list[str]:
        return check_public_context(value, info.data.get("protected") or [])

    @field_validator("seeds")
    @classmethod
    def _non_empty(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is not None and not value:
            raise ValueError("at least one seed is required")
        return value


def _missing_lineage(data: dict[str, Any]) -> list[dict[str, str]]:
    missing = []
    if not data.get("dataset"):
        missing.append(
            {"field": "dataset", "message": "the data version the model was trained on is missing"}
        )
    if not data.get("seeds"):
        missing.append(
            {"field": "seeds", "message": "the random seeds used in training are missing"}
        )
    return missing


def parse_registration(data: dict[str, Any]) -> ExternalRegistration:
    missing = _missing_lineage(data)
    if missing:
        raise InvalidInput(
            "a model version needs its lineage: "
            + " and ".join(m["field"] for m in missing)
            + " missing",
            details=missing,
        )
    try:
        return ExternalRegistration.model_validate(data)
    except ValidationError as exc:
        details = validation_details(exc.errors())
        raise InvalidInput(
            "invalid registration: " + field_list([d["field"] for d in details]), details=details
        ) from None


def load_skops(content: bytes, max_unpacked: int) -> Any:
    """The uploaded Pipeline, built only from trusted types (see ``lineage.safe_skops``).

    Errors name the refused types and never echo anything read from the file's objects.
    """
    field = "artifact.content_base64"
    try:
        return load_trusted(content, max_unpacked)
    except UntrustedArtifact as exc:
        shown = exc.refused[:20]
        raise InvalidInput(
            "the artifact contains types govern does not load: " + ", ".join(shown),
            details=[
                {"field": field, "message": f"untrusted type {name}", "type": name}
                for name in shown
            ],
        ) from None
    except UnreadableArtifact as exc:
        raise InvalidInput(
            f"the artifact is not a readable skops file: {exc}",
            details=[{"field": field, "message": str(exc)}],
        ) from None
    except Exception as exc:
        # Loading failed inside skops or scikit-learn: say so, without their message.
        log.warning("skops upload failed to load: %s", type(exc).__name__)
        raise InvalidInput(
            "the artifact could not be loaded as a scikit-learn model",
            details=[{"field": field, "message": "failed to load"}],
        ) from None


def _decode(artifact: ExternalArtifact) -> bytes:
    try:
        return base64.b64decode(artifact.content_base64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            "artifact.content_base64 is not base64",
            details=[{"field": "artifact.content_base64", "message": "not base64"}],
        ) from None


def _classifier(reg: ExternalRegistration, upload: bytes, max_unpacked: int) -> Any:
    if reg.artifact.format in FORMATS:
        return load_native(reg.artifact.format, upload, reg.features)
    pipeline = load_skops(upload, max_unpacked=max_unpacked)
    if not hasattr(pipeline, "predict_proba"):
        raise InvalidInput(
            "the artifact is not a classifier with predict_proba",
            details=[{"field": "artifact", "message": "no predict_proba"}],
        )
    return pipeline


def _required_columns(reg: ExternalRegistration) -> dict[str, str]:
    """The data version's columns the registration names, with the field that names each."""
    required = {reg.target.column: "target.column"}
    required |= {f.name: f"features.{i}.name" for i, f in enumerate(reg.features)}
    required |= {p.name: f"protected.{i}.name" for i, p in enumerate(reg.protected)}
    return required


def _positive_index(pipeline: Any, classes: list[Any]) -> int:
    """The column of the model's ``predict_proba`` that is the declared positive class."""
    learned = [str(c) for c in getattr(pipeline, "classes_", [])]
    if str(classes[1]) not in learned:
        # The model's own classes are not shown: nothing read from an artifact is echoed.
        raise InvalidInput(
            f"the uploaded model never learned the positive class {classes[1]!r}",
            details=[
                {"field": "target.positive_class", "message": "not among the model's classes"}
            ],
        )
    return learned.index(str(classes[1]))


def _evaluate(
    spec: TrainingSpec, pipeline: Any, frame: Any, y: Any, schema: InputSchema
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's metrics on every row of the data version, overall and by group; a model that
    cannot score the declared features, or some row, is refused."""
    try:
        pipeline.predict_proba(frame_from_table(schema, frame.head(5)[spec.feature_names]))
    except Exception as exc:
        log.warning("uploaded model failed to score: %s", type(exc).__name__)
        raise InvalidInput(
            "the uploaded model cannot score the declared features (check their names, types "
            "and order against the pipeline's input)",
            details=[{"field": "features", "message": f"scoring failed ({type(exc).__name__})"}],
        ) from None
    try:
        return evaluate(spec, pipeline, frame, y, schema)
    except Exception as exc:
        log.warning("uploaded model failed to score its data version: %s", type(exc).__name__)
        raise InvalidInput(
            "the uploaded model cannot score every row of the data version",
            details=[{"field": "artifact", "message": f"scoring failed ({type(exc).__name__})"}],
        ) from None


def _gate(reg: ExternalRegistration, spec: TrainingSpec, metrics: dict[str, Any]) -> dict[str, Any]:
    if reg.gate is not None:
        return apply_gate(spec, metrics)
    return {
        "metric": None,
        "threshold": None,
        "value": None,
        "rule": "no gate declared",
        "passed": True,
    }


def _estimator_class(pipeline: Any) -> str:
    estimator = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    return f"{type(estimator).__module__}.{type(estimator).__qualname__}"


def _lineage(
    reg: ExternalRegistration,
    spec: TrainingSpec,
    dataset: DatasetVersion,
    estimator_class: str,
    metrics: dict[str, Any],
    evaluated: dict[str, Any],
    source: Literal["external", "mlflow"],
) -> dict[str, Any]:
    """What the uploader declared, and what govern measured (``evaluated``: metrics by group,
    gate, outlier detector, proxies); the stored artifact and the timing are added on
    registration."""
    return {
        "schema_version": 1,
        "source": source,
        "run_id": None,
        "dataset": dataset_lineage(dataset),
        # Only what the uploader declared; how it trained is in estimator, seeds and code.
        "spec": {k: v for k, v in spec.resolved().items() if k not in _NOT_DECLARED},
        "seeds": reg.seeds,
        "estimator": {"class": estimator_class, "params": reg.params},
        "environment": reg.environment,
        "code": reg.code,
        "metrics": metrics,
        **evaluated,
    }


def register_external(
    *,
    session: Session,
    store: ArtifactStore,
    name: str,
    data: dict[str, Any],
    actor: str,
    max_unpacked: int,
    policy: DataPolicy,
    source: Literal["external", "mlflow"] = "external",
    extra: dict[str, Any] | None = None,
    in_sample: bool = False,
) -> tuple[RegisteredModel, ModelVersion]:
    """``source``: external (an upload) or mlflow (``lineage.mlflow_import``, whose run is
    ``extra``'s to add to the lineage). ``in_sample``: the data version is proven to be the
    rows it was trained on, so its figures on them are training figures, and say so."""
    reg = parse_registration(data)
    upload = _decode(reg.artifact)
    pipeline = _classifier(reg, upload, max_unpacked)

    assert reg.dataset is not None
    assert reg.seeds is not None
    dataset = service.resolve_dataset_ref(session, reg.dataset, actor, policy=policy)
    assert dataset.id is not None
    frame = service.read_dataset_frame(dataset)
    check_columns(dataset.columns, _required_columns(reg))

    spec = service.spec_like(reg, name).model_copy(update={"public_context": reg.public_context})
    y, classes = binary_target(spec, frame)
    document = build_input_schema(spec, frame, classes)
    document["positive_index"] = _positive_index(pipeline, classes)
    schema = InputSchema.from_document(document)
    all_rows, by_group = _evaluate(spec, pipeline, frame, y, schema)
    note = "scored by govern on every row of the data version"
    if in_sample:
        note += (
            ", which are the rows it was trained on (its MLflow training input): in-sample "
            "figures, optimistic; no held-out rows are known"
        )
    metrics = {"all_rows": all_rows, "note": note}
    gate = _gate(reg, spec, all_rows)
    if in_sample and gate["metric"] is not None:
        gate["rule"] += " (in-sample: on its training rows)"
    native = reg.artifact.format if reg.artifact.format in FORMATS else None
    stored = store_artifact(
        store, ModelArtifact.of(pipeline), uploaded=upload, native_format=native
    )
    estimator_class = _estimator_class(pipeline)
    evaluated = {
        "metrics_by_group": by_group,
        "gate": gate,
        "outlier_detector": fit_detector(schema, frame),
        "proxies": proxies_for(spec, pipeline, frame, schema, min(reg.seeds.values(), default=0)),
    }
    return register_version(
        session,
        model=name,
        description=reg.description,
        version=NewVersion(
            artifact=stored,
            estimator_class=estimator_class,
            input_schema=document,
            metrics=metrics,
            lineage={
                **_lineage(reg, spec, dataset, estimator_class, metrics, evaluated, source),
                **(extra or {}),
            },
            timing=Timing(reg.started_at, reg.finished_at),
            source=source,
            dataset_version_id=dataset.id,
            run_id=None,
            gate_passed=gate["passed"],
            created_by=actor,
        ),
    )
