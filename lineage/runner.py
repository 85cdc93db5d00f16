"""Run one training job from its recorded spec, and record everything needed to rebuild it.

Order: load the data by its commit and check its hashes, split with the recorded seed, fit,
evaluate, apply the gate, write the artifact, create the model version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from core.config import Settings
from core.db import make_engine, session_factory, transaction, utcnow
from core.errors import GovernanceError
from lineage import service
from lineage.artifacts import PICKLE_PROTOCOL, ArtifactStore
from lineage.environment import capture_environment, code_version
from lineage.executor import worker_id
from lineage.fit_tasks import Trained
from lineage.fresh import ZYGOTE, JobStopped, current_env
from lineage.jobs import (
    CANCELLED_BY_REQUEST,
    abandoned_jobs,
    claim_job,
    finish_job,
    record_stop,
    stop_requested,
    update_job,
)
from lineage.models import DatasetVersion, RunStatus, TrainingRun
from lineage.spec import TrainingSpec, parse_spec, spec_hash
from lineage.training import TrainingOutcome

log = logging.getLogger("govern.runner")

Progress = Callable[[float, str], None]


def _update(factory: sessionmaker[Session], run_id: int, **fields: Any) -> None:
    update_job(factory, TrainingRun, run_id, **fields)


def dataset_lineage(dataset: DatasetVersion) -> dict[str, Any]:
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


def build_lineage(
    *,
    spec: TrainingSpec,
    resolved: dict[str, Any],
    dataset: DatasetVersion,
    outcome: TrainingOutcome,
    artifact: dict[str, Any],
    started_at: Any,
    finished_at: Any,
    run_id: int | None,
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "run_id": run_id,
        "dataset": dataset_lineage(dataset),
        "spec": resolved,
        "spec_sha256": spec_hash(resolved),
        "seeds": outcome.seeds,
        "split": outcome.split,
        "estimator": {
            "class": spec.estimator.class_path,
            "params": outcome.pipeline.named_steps["model"].get_params(deep=False),
        },
        "environment": capture_environment(),
        "code": code_version(),
        "metrics": outcome.metrics,
        "metrics_by_group": outcome.metrics_by_group,
        "gate": outcome.gate,
        "outlier_detector": outcome.outlier_detector,
        "proxies": outcome.proxies,
        "missing_values": missing_values(outcome.input_schema),
        "artifact": artifact,
        "timing": {
            "started_at": started_at.isoformat(),
            "finished_at": finished_at.isoformat(),
            "duration_s": (finished_at - started_at).total_seconds(),
            "fit_s": outcome.fit_seconds,
        },
    }


def missing_values(schema: dict[str, Any]) -> dict[str, Any]:
    """Per feature: how many training rows lacked it, whether predict accepts null, and what
    the fitted model puts in its place (the recorded imputation and its learned value)."""
    return {
        f["name"]: {
            "missing_in_training": f.get("missing_in_training", 0),
            "nullable": f.get("nullable", False),
            **(f.get("missing") or {}),
        }
        for f in schema["features"]
    }


def execute_run(settings: Settings, run_id: int, progress: Progress | None = None) -> None:
    """The job. Never raises for a failure of the run itself: the run records it instead."""
    engine = make_engine(settings)
    try:
        _execute(engine, settings, run_id, progress or (lambda _f, _m: None))
    finally:
        engine.dispose()


def _execute(engine: Engine, settings: Settings, run_id: int, progress: Progress) -> None:
    factory = session_factory(engine)
    started_at = utcnow()
    started = time.perf_counter()
    deadline = time.monotonic() + settings.job_timeout_s

    def report(fraction: float, message: str) -> None:
        _update(factory, run_id, progress=fraction, message=message)
        progress(fraction, message)

    if not claim_job(factory, TrainingRun, run_id, worker_id(), started_at):
        return  # cancelled while it waited in the queue
    try:
        with transaction(factory) as session:
            run = session.get(TrainingRun, run_id)
            assert run is not None
            resolved = dict(run.spec)
            dataset = session.get(DatasetVersion, run.dataset_version_id)
            assert dataset is not None
            created_by = run.created_by
        spec = parse_spec(resolved)

        report(0.05, f"reading {dataset.name} v{dataset.version} at {dataset.commit_sha[:12]}")
        snapshot = service.read_dataset_snapshot(dataset)

        # The fit runs in a fresh child process at lower priority: it cannot slow serving down,
        # and it can be killed when it is cancelled or runs past GOV_JOB_TIMEOUT_S.
        trained: Trained = ZYGOTE.run(
            "train",
            current_env(),
            (resolved, snapshot.content, snapshot.format),
            deadline=deadline,
            should_stop=partial(stop_requested, factory, TrainingRun, run_id),
            progress=report,
        )

        outcome = trained.outcome
        report(0.85, "writing the artifact")
        store = ArtifactStore(settings.artifacts)
        digest = store.put(trained.artifact)
        artifact = {
            "sha256": digest,
            "size_bytes": len(trained.artifact),
            "format": f"pickle-{PICKLE_PROTOCOL}",
            "fingerprint": trained.fingerprint,
        }
        finished_at = utcnow()

        report(0.95, "registering the model version")
        with transaction(factory) as session:
            model = service.get_or_create_model(
                session=session,
                name=spec.model_name,
                description=spec.description,
                actor=created_by,
            )
            lineage = build_lineage(
                spec=spec,
                resolved=resolved,
                dataset=dataset,
                outcome=outcome,
                artifact=artifact,
                started_at=started_at,
                finished_at=finished_at,
                run_id=run_id,
            )
            version = service.add_version(
                session=session,
                model=model,
                fields={
                    "artifact_sha256": digest,
                    "fingerprint": artifact["fingerprint"],
                    "estimator_class": spec.estimator.class_path,
                    "input_schema": outcome.input_schema,
                    "metrics": outcome.metrics,
                    "lineage": lineage,
                    "source": "run",
                    "dataset_version_id": dataset.id,
                    "run_id": run_id,
                    "gate_passed": outcome.gate["passed"],
                    "created_by": created_by,
                },
            )
            message = (
                f"{spec.model_name} v{version.version} registered in "
                f"{time.perf_counter() - started:.1f}s; gate "
                f"{'passed' if outcome.gate['passed'] else 'FAILED'}"
            )
            if not finish_job(
                session,
                TrainingRun,
                run_id,
                status=RunStatus.succeeded.value,
                progress=1.0,
                message=message,
                finished_at=utcnow(),
            ):
                # Cancelled while the artifact was written: the version is not registered.
                raise JobStopped("cancelled", CANCELLED_BY_REQUEST)
        progress(1.0, "done")
    except JobStopped as exc:
        log.warning("training run %s stopped: %s", run_id, exc.message)
        message = exc.message
        if exc.code == "timeout":
            message = f"stopped after {settings.job_timeout_s:g} s (GOV_JOB_TIMEOUT_S)"
        error = {"code": exc.code, "message": message, "details": None}
        record_stop(factory, TrainingRun, run_id, exc.code, message, error=error)
    except Exception as exc:
        error = _describe(exc)
        log.warning("training run %s failed: %s", run_id, error["message"])
        _update(
            factory,
            run_id,
            status=RunStatus.failed.value,
            message=f"failed: {error['message']}"[:500],
            error=error,
            finished_at=utcnow(),
        )


def _describe(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, GovernanceError):
        return {"code": exc.code, "message": exc.message, "details": exc.details}
    return {"code": type(exc).__name__, "message": str(exc) or type(exc).__name__, "details": None}


def fail_interrupted_runs(factory: sessionmaker[Session]) -> int:
    """Runs left queued, running or cancelling by a process on this host that no longer exists:
    failed (or cancelled, when that was asked), never left pending."""
    with transaction(factory) as session:
        runs = abandoned_jobs(session, TrainingRun)
        for run in runs:
            if run.status == RunStatus.cancelling.value:
                run.status = RunStatus.cancelled.value
                run.message = "cancelled: the process running it stopped"
            else:
                run.status = RunStatus.failed.value
                run.message = "failed: interrupted by a restart of the process running it"
                run.error = {"code": "interrupted", "message": run.message, "details": None}
            run.finished_at = utcnow()
            session.add(run)
    return len(runs)
