"""Register a model version trained outside govern, with its lineage.

The upload is a scikit-learn Pipeline in skops format: skops loads only the types we trust
(scikit-learn, NumPy, SciPy), so an upload can never run code the way an unpickled one could.
The stored artifact is then written by govern itself and verified by hash like any other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from sqlmodel import Session

from core.errors import InvalidInput, field_list, validation_details
from lineage import service
from lineage.artifacts import PICKLE_PROTOCOL, ArtifactStore, serialize_model
from lineage.data_sources import DataPolicy
from lineage.datasets import check_columns
from lineage.fingerprint import fingerprint
from lineage.input_schema import build_input_schema, frame_from_table
from lineage.models import ModelVersion, RegisteredModel
from lineage.outliers import fit_detector
from lineage.runner import dataset_lineage
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
    check_public_context,
)
from lineage.training import apply_gate, binary_target, evaluate, proxies_for

log = logging.getLogger("govern.external")

_NOT_DECLARED = {"estimator", "seeds", "validation", "transforms"}


class ExternalArtifact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str = Field(pattern="^skops$")
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


def register_external(
    *,
    session: Session,
    store: ArtifactStore,
    name: str,
    data: dict[str, Any],
    actor: str,
    max_unpacked: int,
    policy: DataPolicy,
) -> tuple[RegisteredModel, ModelVersion]:
    reg = parse_registration(data)
    try:
        upload = base64.b64decode(reg.artifact.content_base64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            "artifact.content_base64 is not base64",
            details=[{"field": "artifact.content_base64", "message": "not base64"}],
        ) from None
    pipeline = load_skops(upload, max_unpacked=max_unpacked)
    if not hasattr(pipeline, "predict_proba"):
        raise InvalidInput(
            "the artifact is not a classifier with predict_proba",
            details=[{"field": "artifact", "message": "no predict_proba"}],
        )

    assert reg.dataset is not None
    assert reg.seeds is not None
    dataset = service.resolve_dataset_ref(session, reg.dataset, actor, policy=policy)
    frame = service.read_dataset_frame(dataset)
    names = [f.name for f in reg.features]
    required = {reg.target.column: "target.column"} | {
        n: f"features.{i}.name" for i, n in enumerate(names)
    }
    required |= {p.name: f"protected.{i}.name" for i, p in enumerate(reg.protected)}

    check_columns(dataset.columns, required)

    spec = service.spec_like(reg, name).model_copy(update={"public_context": reg.public_context})
    y, classes = binary_target(spec, frame)
    schema = build_input_schema(spec, frame, classes)
    learned = [str(c) for c in getattr(pipeline, "classes_", [])]
    if str(classes[1]) not in learned:
        # The model's own classes are not shown: nothing read from an artifact is echoed.
        raise InvalidInput(
            f"the uploaded model never learned the positive class {classes[1]!r}",
            details=[
                {"field": "target.positive_class", "message": "not among the model's classes"}
            ],
        )
    schema["positive_index"] = learned.index(str(classes[1]))
    try:
        pipeline.predict_proba(frame_from_table(schema, frame.head(5)[names]))
    except Exception as exc:
        log.warning("uploaded model failed to score: %s", type(exc).__name__)
        raise InvalidInput(
            "the uploaded model cannot score the declared features (check their names, types "
            "and order against the pipeline's input)",
            details=[{"field": "features", "message": f"scoring failed ({type(exc).__name__})"}],
        ) from None
    try:
        metrics, by_group = evaluate(spec, pipeline, frame, y, schema)
    except Exception as exc:
        log.warning("uploaded model failed to score its data version: %s", type(exc).__name__)
        raise InvalidInput(
            "the uploaded model cannot score every row of the data version",
            details=[{"field": "artifact", "message": f"scoring failed ({type(exc).__name__})"}],
        ) from None
    gate = (
        apply_gate(spec, metrics)
        if reg.gate is not None
        else {
            "metric": None,
            "threshold": None,
            "value": None,
            "rule": "no gate declared",
            "passed": True,
        }
    )
    content = serialize_model(pipeline)
    digest = store.put(content)
    model_fingerprint = fingerprint(pipeline)
    estimator = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    estimator_class = f"{type(estimator).__module__}.{type(estimator).__qualname__}"
    lineage: dict[str, Any] = {
        "schema_version": 1,
        "source": "external",
        "run_id": None,
        "dataset": dataset_lineage(dataset),
        # Only what the uploader declared; how it trained is in estimator, seeds and code.
        "spec": {k: v for k, v in spec.resolved().items() if k not in _NOT_DECLARED},
        "seeds": reg.seeds,
        "estimator": {"class": estimator_class, "params": reg.params},
        "environment": reg.environment,
        "code": reg.code,
        "metrics": {
            "all_rows": metrics,
            "note": "scored by govern on every row of the data version",
        },
        "metrics_by_group": by_group,
        "gate": gate,
        "outlier_detector": fit_detector(schema, frame),
        "proxies": proxies_for(
            spec, pipeline, frame, schema, min((reg.seeds or {}).values(), default=0)
        ),
        "artifact": {
            "sha256": digest,
            "size_bytes": len(content),
            "format": f"pickle-{PICKLE_PROTOCOL}",
            "fingerprint": model_fingerprint,
            "uploaded_skops_sha256": hashlib.sha256(upload).hexdigest(),
        },
        "timing": {
            "started_at": reg.started_at.isoformat() if reg.started_at else None,
            "finished_at": reg.finished_at.isoformat() if reg.finished_at else None,
            "duration_s": (reg.finished_at - reg.started_at).total_seconds()
            if reg.started_at and reg.finished_at
            else None,
        },
    }
    model = service.get_or_create_model(
        session=session, name=name, description=reg.description, actor=actor
    )
    version = service.add_version(
        session=session,
        model=model,
        fields={
            "artifact_sha256": digest,
            "fingerprint": model_fingerprint,
            "estimator_class": estimator_class,
            "input_schema": schema,
            "metrics": lineage["metrics"],
            "lineage": lineage,
            "source": "external",
            "dataset_version_id": dataset.id,
            "run_id": None,
            "gate_passed": gate["passed"],
            "created_by": actor,
        },
    )
    return model, version
