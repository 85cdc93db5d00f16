"""Run one training job from its recorded spec, and record everything needed to rebuild it.

Order: load the data by its commit and check its hashes, split with the recorded seed, fit,
evaluate, apply the gate, write the artifact, create the model version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from core.config import Settings
from core.db import make_engine, session_factory, transaction, utcnow
from core.errors import GovernanceError
from lineage import openlineage_events, service
from lineage.artifacts import ArtifactStore
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
from lineage.mitigation import reduction_summary
from lineage.models import DatasetVersion, RunStatus, TrainingRun
from lineage.pipeline import estimator_params
from lineage.registration import (
    ModelArtifact,
    NewVersion,
    StoredArtifact,
    Timing,
    dataset_lineage,
    register_version,
    store_artifact,
)
from lineage.spec import TrainingSpec, parse_spec, spec_hash
from lineage.training import TrainingOutcome

log = logging.getLogger("govern.runner")

Progress = Callable[[float, str], None]


def _update(factory: sessionmaker[Session], run_id: int, **fields: Any) -> None:
    update_job(factory, TrainingRun, run_id, **fields)


def build_lineage(
    *,
    spec: TrainingSpec,
    resolved: dict[str, Any],
    dataset: DatasetVersion,
    outcome: TrainingOutcome,
    run_id: int | None,
) -> dict[str, Any]:
    """A run's lineage, but for its artifact and timing (``lineage.registration`` adds them)."""
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
            "params": estimator_params(outcome.pipeline.named_steps["model"]),
            **(
                {"reduction": summary}
                if (summary := reduction_summary(outcome.pipeline.named_steps["model"]))
                else {}
            ),
        },
        "environment": capture_environment(),
        "code": code_version(),
        "metrics": outcome.metrics,
        "metrics_by_group": outcome.metrics_by_group,
        "gate": outcome.gate,
        "outlier_detector": outcome.outlier_detector,
        "proxies": outcome.proxies,
        "missing_values": missing_values(outcome.input_schema),
        **({"scorecard": outcome.scorecard} if outcome.scorecard else {}),
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


@dataclass(frozen=True)
class _Job:
    """A claimed run, as read from the database."""

    run_id: int
    resolved: dict[str, Any]
    spec: TrainingSpec
    dataset: DatasetVersion
    created_by: str


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
    events = openlineage_events.emitter_for(settings)
    ref, inputs = None, []
    try:
        job = _load(factory, run_id)
        ref = openlineage_events.JobRef(
            "training", run_id, f"training.{job.spec.model_name}", job.spec.model_name
        )
        inputs = [dataset_lineage(job.dataset)]
        if events is not None:
            events.emit(ref, "START", inputs=inputs)
        trained = _fit(factory, job, deadline, report)
        report(0.85, "writing the artifact")
        stored = store_artifact(
            ArtifactStore(settings.artifacts), ModelArtifact(trained.artifact, trained.fingerprint)
        )
        timing = Timing(started_at, utcnow(), fit_s=trained.outcome.fit_seconds)
        report(0.95, "registering the model version")
        model = _register(factory, job, trained.outcome, stored, timing, started)
        if events is not None:
            events.emit(ref, "COMPLETE", inputs=inputs, outputs=[model])
        progress(1.0, "done")
    except JobStopped as exc:
        _record_stop(factory, settings, run_id, exc)
        if events is not None and ref is not None:
            state = "ABORT" if exc.code == "cancelled" else "FAIL"
            events.emit(ref, state, inputs=inputs, error=exc.message)
    except Exception as exc:
        error = _record_failure(factory, run_id, exc)
        if events is not None:
            ref = ref or openlineage_events.JobRef("training", run_id, "training")
            events.emit(ref, "FAIL", inputs=inputs, error=error["message"])


def _load(factory: sessionmaker[Session], run_id: int) -> _Job:
    with transaction(factory) as session:
        run = session.get(TrainingRun, run_id)
        assert run is not None
        resolved = dict(run.spec)
        dataset = session.get(DatasetVersion, run.dataset_version_id)
        assert dataset is not None
        created_by = run.created_by
    return _Job(run_id, resolved, parse_spec(resolved), dataset, created_by)


def _fit(factory: sessionmaker[Session], job: _Job, deadline: float, report: Progress) -> Trained:
    dataset = job.dataset
    report(0.05, f"reading {dataset.name} v{dataset.version} at {dataset.commit_sha[:12]}")
    snapshot = service.read_dataset_snapshot(dataset)
    # The fit runs in a fresh child process at lower priority: it cannot slow serving down,
    # and it can be killed when it is cancelled or runs past GOV_JOB_TIMEOUT_S.
    trained: Trained = ZYGOTE.run(
        "train",
        current_env(),
        (job.resolved, snapshot.content, snapshot.format),
        deadline=deadline,
        should_stop=partial(stop_requested, factory, TrainingRun, job.run_id),
        progress=report,
    )
    return trained


def _register(
    factory: sessionmaker[Session],
    job: _Job,
    outcome: TrainingOutcome,
    stored: StoredArtifact,
    timing: Timing,
    started: float,
) -> dict[str, Any]:
    """Register the version and mark the run succeeded, in one transaction; the version as
    ``openlineage_events.model_output`` takes it."""
    spec, dataset = job.spec, job.dataset
    assert dataset.id is not None
    with transaction(factory) as session:
        _model, version = register_version(
            session,
            model=spec.model_name,
            description=spec.description,
            version=NewVersion(
                artifact=stored,
                estimator_class=spec.estimator.class_path,
                input_schema=outcome.input_schema,
                metrics=outcome.metrics,
                lineage=build_lineage(
                    spec=spec,
                    resolved=job.resolved,
                    dataset=dataset,
                    outcome=outcome,
                    run_id=job.run_id,
                ),
                timing=timing,
                source="run",
                dataset_version_id=dataset.id,
                run_id=job.run_id,
                gate_passed=outcome.gate["passed"],
                created_by=job.created_by,
            ),
        )
        message = (
            f"{spec.model_name} v{version.version} registered in "
            f"{time.perf_counter() - started:.1f}s; gate "
            f"{'passed' if outcome.gate['passed'] else 'FAILED'}"
        )
        if not finish_job(
            session,
            TrainingRun,
            job.run_id,
            status=RunStatus.succeeded.value,
            progress=1.0,
            message=message,
            finished_at=utcnow(),
        ):
            # Cancelled while the artifact was written: the version is not registered.
            raise JobStopped("cancelled", CANCELLED_BY_REQUEST)
        return openlineage_events.model_record(spec.model_name, version)


def _record_stop(
    factory: sessionmaker[Session], settings: Settings, run_id: int, exc: JobStopped
) -> None:
    log.warning("training run %s stopped: %s", run_id, exc.message)
    message = exc.message
    if exc.code == "timeout":
        message = f"stopped after {settings.job_timeout_s:g} s (GOV_JOB_TIMEOUT_S)"
    error = {"code": exc.code, "message": message, "details": None}
    record_stop(factory, TrainingRun, run_id, exc.code, message, error=error)


def _record_failure(factory: sessionmaker[Session], run_id: int, exc: Exception) -> dict[str, Any]:
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
    return error


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
