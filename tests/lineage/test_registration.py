"""What registration records, on values built in memory: the artifact entry, the timing, the
lineage's order and the version's columns (the database round trip is in test_training and
test_external)."""

from __future__ import annotations

import hashlib
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lineage.artifacts import ArtifactStore
from lineage.models import ModelVersion
from lineage.registration import (
    ModelArtifact,
    NewVersion,
    StoredArtifact,
    Timing,
    store_artifact,
)

STARTED = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def test_a_stored_artifact_is_found_by_its_hash_and_an_upload_keeps_its_own(
    tmp_path: Path,
) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    model = {"weights": [0.25, 0.5]}
    artifact = ModelArtifact.of(model)
    assert pickle.loads(artifact.content) == model
    stored = store_artifact(store, artifact)
    assert stored.sha256 == hashlib.sha256(artifact.content).hexdigest()
    assert store.path_for(stored.sha256).read_bytes() == artifact.content
    assert stored.lineage() == {
        "sha256": stored.sha256,
        "size_bytes": len(artifact.content),
        "format": "pickle-5",
        "fingerprint": artifact.fingerprint,
    }
    uploaded = store_artifact(store, artifact, uploaded=b"skops file")
    assert list(uploaded.lineage()) == [
        "sha256",
        "size_bytes",
        "format",
        "fingerprint",
        "uploaded_skops_sha256",
    ]
    assert uploaded.lineage()["uploaded_skops_sha256"] == hashlib.sha256(b"skops file").hexdigest()


def test_a_run_records_its_whole_timing_and_an_upload_what_it_declared() -> None:
    finished = STARTED + timedelta(seconds=90)
    assert Timing(STARTED, finished, fit_s=12.5).lineage() == {
        "started_at": "2025-03-01T09:00:00+00:00",
        "finished_at": "2025-03-01T09:01:30+00:00",
        "duration_s": 90.0,
        "fit_s": 12.5,
    }
    assert Timing(STARTED, None).lineage() == {
        "started_at": "2025-03-01T09:00:00+00:00",
        "finished_at": None,
        "duration_s": None,
    }


def test_the_version_row_has_every_column_and_its_lineage_ends_with_artifact_and_timing() -> None:
    stored = StoredArtifact(sha256="a" * 64, size_bytes=10, fingerprint="f" * 64)
    version = NewVersion(
        artifact=stored,
        estimator_class="sklearn.linear_model.LogisticRegression",
        input_schema={"features": []},
        metrics={"roc_auc": 0.8},
        lineage={"schema_version": 1, "run_id": 3, "gate": {"passed": True}},
        timing=Timing(STARTED, STARTED, fit_s=0.0),
        source="run",
        dataset_version_id=2,
        run_id=3,
        gate_passed=True,
        created_by="k1",
    )
    columns = version.columns()
    assigned_on_insert = {"id", "model_id", "version", "created_at"}
    assert set(columns) == set(ModelVersion.model_fields) - assigned_on_insert
    assert columns["artifact_sha256"] == "a" * 64 and columns["fingerprint"] == "f" * 64
    assert list(columns["lineage"]) == ["schema_version", "run_id", "gate", "artifact", "timing"]
    assert columns["lineage"]["artifact"] == stored.lineage()
    assert columns["lineage"]["timing"]["fit_s"] == 0.0
