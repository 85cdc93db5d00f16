"""Registering a model version: the one way a version comes to be.

A training run (``lineage.runner``) and a model trained elsewhere (``lineage.external``) both end
here, in two steps. ``store_artifact`` writes the pickled model to the content-addressed store;
it needs no database, so a run does it before it opens the transaction that registers the
version. ``register_version`` then records the version under the next number, with its lineage:
what the caller recorded, then the stored artifact, then the timing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlmodel import Session

from lineage import registry
from lineage.artifacts import PICKLE_PROTOCOL, ArtifactStore, serialize_model
from lineage.fingerprint import fingerprint
from lineage.models import DatasetVersion, ModelVersion, RegisteredModel

ARTIFACT_FORMAT = f"pickle-{PICKLE_PROTOCOL}"


# Versions whose training govern did not run: uploaded (external) or imported from MLflow.
TRAINED_ELSEWHERE = frozenset({"external", "mlflow"})


def trained_elsewhere(lineage: dict[str, Any]) -> bool:
    return lineage.get("source") in TRAINED_ELSEWHERE


@dataclass(frozen=True)
class ModelArtifact:
    """A fitted model as govern stores it: its pickled bytes and its fingerprint."""

    content: bytes
    fingerprint: str

    @classmethod
    def of(cls, model: Any) -> ModelArtifact:
        return cls(serialize_model(model), fingerprint(model))


@dataclass(frozen=True)
class StoredArtifact:
    """An artifact in the store. An uploaded model also keeps the hash of the skops file it came
    in (govern stores its own serialization of it)."""

    sha256: str
    size_bytes: int
    fingerprint: str
    uploaded_skops_sha256: str | None = None
    uploaded: dict[str, Any] | None = None  # a native upload: its format, sha256 and size

    def lineage(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "format": ARTIFACT_FORMAT,
            "fingerprint": self.fingerprint,
        }
        if self.uploaded_skops_sha256 is not None:
            record["uploaded_skops_sha256"] = self.uploaded_skops_sha256
        if self.uploaded is not None:
            record["uploaded"] = self.uploaded
        return record


def store_artifact(
    store: ArtifactStore,
    artifact: ModelArtifact,
    *,
    uploaded: bytes | None = None,
    native_format: str | None = None,
) -> StoredArtifact:
    """Write the artifact. ``uploaded``: the file it was uploaded as, whose hash is kept; a
    native model's file (``native_format``) is kept in the store too, in its own format."""
    if native_format is not None:
        assert uploaded is not None
        kept = {"format": native_format, "sha256": store.put(uploaded), "size_bytes": len(uploaded)}
        return StoredArtifact(
            sha256=store.put(artifact.content),
            size_bytes=len(artifact.content),
            fingerprint=artifact.fingerprint,
            uploaded=kept,
        )
    return StoredArtifact(
        sha256=store.put(artifact.content),
        size_bytes=len(artifact.content),
        fingerprint=artifact.fingerprint,
        uploaded_skops_sha256=hashlib.sha256(uploaded).hexdigest()
        if uploaded is not None
        else None,
    )


@dataclass(frozen=True)
class Timing:
    """When the training ran. A run knows all of it; an upload says what its trainer declared,
    and its fit time is never known."""

    started_at: datetime | None
    finished_at: datetime | None
    fit_s: float | None = None

    def lineage(self) -> dict[str, Any]:
        started, finished = self.started_at, self.finished_at
        record: dict[str, Any] = {
            "started_at": started.isoformat() if started else None,
            "finished_at": finished.isoformat() if finished else None,
            "duration_s": (finished - started).total_seconds() if started and finished else None,
        }
        if self.fit_s is not None:
            record["fit_s"] = self.fit_s
        return record


def dataset_lineage(dataset: DatasetVersion) -> dict[str, Any]:
    """The data version a model was trained on, as its lineage records it."""
    return {
        "id": dataset.id,
        "name": dataset.name,
        "version": dataset.version,
        "repo": dataset.repo,
        "path": dataset.path,
        "rev": dataset.rev,
        "commit": dataset.commit_sha,
        "md5": dataset.md5,
        "sha256": dataset.sha256,
        "size_bytes": dataset.size_bytes,
        "format": dataset.format,
        "row_count": dataset.row_count,
        "columns": dataset.columns,
    }


@dataclass(frozen=True)
class NewVersion:
    """What a model version is made of, besides its model and its number.

    ``lineage`` is what the caller records (data, spec, seeds, estimator, environment, metrics,
    gate, ...); the registered lineage adds the stored artifact and the timing after it."""

    artifact: StoredArtifact
    estimator_class: str
    input_schema: dict[str, Any]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    timing: Timing
    source: Literal["run", "external", "mlflow"]
    dataset_version_id: int
    run_id: int | None
    gate_passed: bool
    created_by: str

    def lineage_record(self) -> dict[str, Any]:
        return {
            **self.lineage,
            "artifact": self.artifact.lineage(),
            "timing": self.timing.lineage(),
        }

    def columns(self) -> dict[str, Any]:
        """The ``model_version`` row's columns, but for its model and number."""
        return {
            "artifact_sha256": self.artifact.sha256,
            "fingerprint": self.artifact.fingerprint,
            "estimator_class": self.estimator_class,
            "input_schema": self.input_schema,
            "metrics": self.metrics,
            "lineage": self.lineage_record(),
            "source": self.source,
            "dataset_version_id": self.dataset_version_id,
            "run_id": self.run_id,
            "gate_passed": self.gate_passed,
            "created_by": self.created_by,
        }


def register_version(
    session: Session, *, model: str, description: str, version: NewVersion
) -> tuple[RegisteredModel, ModelVersion]:
    """Record ``version`` as the next version of ``model``, creating the model (with
    ``description``) on its first version."""
    registered = registry.get_or_create_model(
        session=session, name=model, description=description, actor=version.created_by
    )
    added = registry.add_version(session=session, model=registered, fields=version.columns())
    return registered, added
