"""Datasets, training runs and the model registry: the database side of lineage."""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.config import Settings
from core.errors import Conflict, GovernanceError, InvalidInput, NotFound
from core.pagination import Page
from lineage import datasets
from lineage.data_sources import DataPolicy, DatasetError
from lineage.executor import worker_id
from lineage.jobs import request_cancel
from lineage.models import (
    DatasetVersion,
    ModelVersion,
    RunStatus,
    TrainingRun,
)
from lineage.schemas import (
    DatasetPublic,
    RunPublic,
)
from lineage.spec import DatasetRef, FeatureType, TrainingSpec, cost_problems, parse_spec
from lineage.training import check_against_data


class DataIntegrityError(GovernanceError):
    status_code = 409
    code = "data_integrity"


# Datasets ---------------------------------------------------------------------------------------


def dataset_public(dataset: DatasetVersion) -> DatasetPublic:
    assert dataset.id is not None
    return DatasetPublic(
        id=dataset.id,
        name=dataset.name,
        version=dataset.version,
        repo=dataset.repo,
        path=dataset.path,
        rev=dataset.rev,
        commit=dataset.commit_sha,
        md5=dataset.md5,
        sha256=dataset.sha256,
        size_bytes=dataset.size_bytes,
        format=dataset.format,
        row_count=dataset.row_count,
        columns=dataset.columns,
        created_at=dataset.created_at,
        created_by=dataset.created_by,
    )


def _find_dataset(session: Session, name: str, snap: datasets.Snapshot) -> DatasetVersion | None:
    return session.exec(
        select(DatasetVersion).where(
            DatasetVersion.name == name,
            DatasetVersion.repo == snap.repo,
            DatasetVersion.path == snap.path,
            DatasetVersion.commit_sha == snap.commit,
        )
    ).first()


def register_dataset(
    *,
    session: Session,
    name: str,
    repo: str,
    path: str,
    rev: str,
    actor: str,
    policy: DataPolicy | None,
) -> tuple[DatasetVersion, bool]:
    """Register one data version; the same data at the same commit returns the existing row.

    ``policy`` says where the data may come from. Every caller acting for someone else (the
    API, the CLI) passes the configured one; None is for in-process code that chose the
    repository itself (tests, benchmarks, the drills).
    """
    snap = datasets.read_snapshot(repo, path, rev, policy=policy)
    existing = _find_dataset(session, name, snap)
    if existing is not None:
        return existing, False
    for _attempt in range(3):
        latest = session.exec(
            select(sa.func.max(DatasetVersion.version)).where(DatasetVersion.name == name)
        ).one()
        dataset = DatasetVersion(
            name=name,
            version=(latest or 0) + 1,
            repo=snap.repo,
            path=snap.path,
            rev=rev,
            commit_sha=snap.commit,
            md5=snap.md5,
            sha256=snap.sha256,
            size_bytes=snap.size_bytes,
            format=snap.format,
            row_count=snap.row_count,
            columns=snap.columns,
            created_by=actor,
        )
        try:
            with session.begin_nested():
                session.add(dataset)
                session.flush()
            return dataset, True
        except IntegrityError:
            # Another request registered the same name concurrently: reuse or renumber.
            existing = _find_dataset(session, name, snap)
            if existing is not None:
                return existing, False
    raise Conflict(f"could not allocate a version number for dataset {name!r}; retry")


def get_dataset(*, session: Session, dataset_id: int) -> DatasetVersion:
    dataset = session.get(DatasetVersion, dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset version with id {dataset_id}", details={"id": dataset_id})
    return dataset


def list_datasets(*, session: Session, page: Page, name: str | None = None) -> list[DatasetVersion]:
    query = select(DatasetVersion).order_by(col(DatasetVersion.id)).limit(page.limit)
    if page.cursor is not None:
        query = query.where(col(DatasetVersion.id) > page.cursor)
    if name is not None:
        query = query.where(DatasetVersion.name == name)
    return list(session.exec(query).all())


def read_dataset_frame(dataset: DatasetVersion) -> pd.DataFrame:
    """Read a registered version again, by its commit, and prove it is the same bytes."""
    return read_dataset_snapshot(dataset).frame()


def read_dataset_snapshot(dataset: DatasetVersion) -> datasets.Snapshot:
    """A registered version's bytes, read again by its commit and proven the same."""
    snap = datasets.read_snapshot(dataset.repo, dataset.path, dataset.commit_sha)
    if snap.md5 != dataset.md5 or snap.sha256 != dataset.sha256:
        raise DataIntegrityError(
            f"dataset {dataset.name} v{dataset.version} no longer matches its record",
            details={
                "md5": {"recorded": dataset.md5, "read": snap.md5},
                "sha256": {"recorded": dataset.sha256, "read": snap.sha256},
            },
        )
    return snap


# Runs -------------------------------------------------------------------------------------------


def resolve_dataset_ref(
    session: Session, ref: DatasetRef, actor: str, *, policy: DataPolicy | None
) -> DatasetVersion:
    """A registered version by id, or the reference registered now (under ``policy``)."""
    if ref.id is not None:
        dataset = session.get(DatasetVersion, ref.id)
        if dataset is None:
            raise InvalidInput(
                f"no dataset version with id {ref.id}",
                details=[{"field": "dataset.id", "message": "unknown dataset version"}],
            )
        return dataset
    assert ref.name is not None
    assert ref.repo is not None
    assert ref.path is not None
    assert ref.rev is not None
    try:
        dataset, _ = register_dataset(
            session=session,
            name=ref.name,
            repo=ref.repo,
            path=ref.path,
            rev=ref.rev,
            actor=actor,
            policy=policy,
        )
    except DatasetError as exc:
        exc.message = f"dataset.{exc.field_name}: {exc.problem}"
        exc.details = [{"field": f"dataset.{exc.field_name}", "message": exc.problem}]
        raise
    return dataset


def _check_spec_against_data(spec: TrainingSpec, dataset: DatasetVersion) -> None:
    required = {spec.target.column: "target.column"}
    required.update({f.name: f"features.{i}.name" for i, f in enumerate(spec.features)})
    required.update({p.name: f"protected.{i}.name" for i, p in enumerate(spec.protected)})
    datasets.check_columns(dataset.columns, required)
    dtypes = {c["name"]: c["dtype"] for c in dataset.columns}
    wrong = [
        {"field": f"features.{i}.type", "message": f"{f.name!r} is {dtypes[f.name]}, not numeric"}
        for i, f in enumerate(spec.features)
        if f.type is FeatureType.numeric and not _numeric_dtype(dtypes[f.name])
    ]
    if wrong:
        raise InvalidInput("numeric features must be numeric columns", details=wrong)


def _numeric_dtype(dtype: str) -> bool:
    return dtype.startswith(("int", "uint", "float", "Int", "UInt", "Float", "bool"))


def spec_like(registration: Any, name: str) -> TrainingSpec:
    """A spec that describes an externally trained model, for schema and evaluation."""
    return TrainingSpec.model_validate(
        {
            "model": name,
            "description": registration.description,
            "intended_use": registration.intended_use,
            "dataset": registration.dataset.model_dump(exclude_none=True),
            "target": registration.target.model_dump(),
            "features": [f.model_dump() for f in registration.features],
            "protected": [p.model_dump() for p in registration.protected],
            "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
            "decision": registration.decision.model_dump(),
            **({"gate": registration.gate.model_dump()} if registration.gate else {}),
        }
    )


def resolved_spec(spec: TrainingSpec, dataset: DatasetVersion) -> dict[str, Any]:
    """Every default filled in, and the data pinned to its commit: re-running this is a rebuild."""
    resolved = spec.resolved()
    resolved["dataset"] = {
        "id": None,
        "name": dataset.name,
        "repo": dataset.repo,
        "path": dataset.path,
        "rev": dataset.commit_sha,
    }
    return resolved


def cancel_run(*, session: Session, run_id: int, actor: str) -> RunPublic:
    run = get_run(session=session, run_id=run_id)  # 404 for an unknown run
    request_cancel(session, TrainingRun, run_id, actor)
    session.refresh(run)  # the cancel was a conditional UPDATE beside the ORM
    return run_public(session, run)


def cost_limits(settings: Settings) -> dict[str, int]:
    """The configured bounds on what a spec's estimator may cost (see ``spec.COST_PARAMS``)."""
    return {"max_estimators": settings.max_estimators, "max_iterations": settings.max_iterations}


def create_run(
    *,
    session: Session,
    spec_data: dict[str, Any] | str,
    actor: str,
    policy: DataPolicy | None = None,
    limits: dict[str, int] | None = None,
) -> TrainingRun:
    """Validate the spec completely and queue a run. Nothing is trained here.

    ``policy`` governs a dataset the spec registers (see ``register_dataset``); the API and the
    CLI pass the configured one.
    """
    spec = parse_spec(spec_data)
    problems = cost_problems(spec, dict(limits or {}))
    if problems:
        raise InvalidInput(
            "the estimator would cost more than this service allows: "
            + ", ".join(p["field"] for p in problems),
            details=problems,
        )
    dataset = resolve_dataset_ref(session, spec.dataset, actor, policy=policy)
    _check_spec_against_data(spec, dataset)
    check_against_data(spec, read_dataset_frame(dataset))
    assert dataset.id is not None
    run = TrainingRun(
        status=RunStatus.queued.value,
        message="queued",
        model_name=spec.model_name,
        spec=resolved_spec(spec, dataset),
        dataset_version_id=dataset.id,
        created_by=actor,
        worker=worker_id(),
    )
    session.add(run)
    session.flush()
    return run


def get_run(*, session: Session, run_id: int) -> TrainingRun:
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise NotFound(f"no training run with id {run_id}", details={"id": run_id})
    return run


def list_runs(*, session: Session, page: Page) -> list[TrainingRun]:
    query = select(TrainingRun).order_by(col(TrainingRun.id).desc()).limit(page.limit)
    if page.cursor is not None:
        query = query.where(col(TrainingRun.id) < page.cursor)
    return list(session.exec(query).all())


def run_public(session: Session, run: TrainingRun) -> RunPublic:
    assert run.id is not None
    version = session.exec(
        select(ModelVersion.version).where(ModelVersion.run_id == run.id)
    ).first()
    return RunPublic(
        id=run.id,
        status=RunStatus(run.status),
        progress=run.progress,
        message=run.message,
        model_name=run.model_name,
        dataset_version_id=run.dataset_version_id,
        model_version=version,
        error=run.error,
        created_at=run.created_at,
        created_by=run.created_by,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )
