"""Datasets, training runs and the model registry: the database side of lineage."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import cells
from core.auth.models import Role
from core.config import Settings
from core.errors import Conflict, GovernanceError, InvalidInput, NotFound
from core.pagination import Page
from lineage import datasets, proxies
from lineage.data_sources import DataPolicy, DatasetError
from lineage.executor import worker_id
from lineage.jobs import request_cancel
from lineage.models import (
    DatasetVersion,
    ModelVersion,
    RegisteredModel,
    RunStatus,
    Stage,
    StageTransition,
    TrainingRun,
)
from lineage.schemas import (
    DatasetPublic,
    LineagePublic,
    ModelPublic,
    ModelVersionPublic,
    ModelVersionSummary,
    RunPublic,
    StageTransitionPublic,
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


# Registry ---------------------------------------------------------------------------------------


def get_model(*, session: Session, name: str) -> RegisteredModel:
    model = session.exec(select(RegisteredModel).where(RegisteredModel.name == name)).first()
    if model is None:
        raise NotFound(f"no model named {name!r}", details={"model": name})
    return model


def get_or_create_model(
    *, session: Session, name: str, description: str, actor: str
) -> RegisteredModel:
    model = session.exec(select(RegisteredModel).where(RegisteredModel.name == name)).first()
    if model is not None:
        return model
    model = RegisteredModel(name=name, description=description, created_by=actor)
    try:
        with session.begin_nested():
            session.add(model)
            session.flush()
    except IntegrityError:
        return get_model(session=session, name=name)
    return model


def get_version(
    *, session: Session, name: str, version: int
) -> tuple[RegisteredModel, ModelVersion]:
    model = get_model(session=session, name=name)
    found = session.exec(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.version == version
        )
    ).first()
    if found is None:
        raise NotFound(
            f"model {name!r} has no version {version}", details={"model": name, "version": version}
        )
    return model, found


def add_version(
    *, session: Session, model: RegisteredModel, fields: dict[str, Any]
) -> ModelVersion:
    """Append a version with the next number; concurrent writers retry on the unique key."""
    for _attempt in range(5):
        latest = session.exec(
            select(sa.func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)
        ).one()
        assert model.id is not None
        version = ModelVersion(model_id=model.id, version=(latest or 0) + 1, **fields)
        try:
            with session.begin_nested():
                session.add(version)
                session.flush()
            return version
        except IntegrityError:
            continue
    raise Conflict(f"could not allocate a version number for model {model.name!r}; retry")


def _transitions(session: Session, version_ids: Sequence[int]) -> list[StageTransition]:
    if not version_ids:
        return []
    return list(
        session.exec(
            select(StageTransition)
            .where(col(StageTransition.model_version_id).in_(version_ids))
            .order_by(col(StageTransition.created_at), col(StageTransition.id))
        ).all()
    )


def stages_at(
    session: Session, version_ids: Sequence[int], at: datetime | None = None
) -> dict[int, Stage]:
    """Each version's stage now, or at a past moment, replayed from the transition history."""
    stages = dict.fromkeys(version_ids, Stage.none)
    for transition in _transitions(session, version_ids):
        if at is not None and transition.created_at > at:
            break
        stages[transition.model_version_id] = Stage(transition.to_stage)
    return stages


def current_stage(session: Session, version: ModelVersion) -> Stage:
    assert version.id is not None
    return stages_at(session, [version.id])[version.id]


def change_stage(
    *, session: Session, name: str, version: int, stage: Stage, reason: str, actor: str
) -> StageTransition:
    _model, found = get_version(session=session, name=name, version=version)
    current = current_stage(session, found)
    if stage is Stage.none:
        raise InvalidInput(
            "a version cannot return to no stage; archive it instead",
            details=[{"field": "stage", "message": "use staging, production or archived"}],
        )
    if stage is current:
        raise Conflict(f"{name} v{version} is already in {stage.value}")
    if stage is Stage.production and not found.gate_passed:
        gate = found.lineage.get("gate", {})
        raise Conflict(
            f"{name} v{version} failed its promotion gate ({gate.get('rule')}, got "
            f"{gate.get('value')}); it cannot go to production",
            details={"gate": gate},
        )
    assert found.id is not None
    transition = StageTransition(
        model_version_id=found.id,
        from_stage=current.value,
        to_stage=stage.value,
        reason=reason,
        actor=actor,
    )
    session.add(transition)
    session.flush()
    return transition


def transition_public(transition: StageTransition, version: int) -> StageTransitionPublic:
    return StageTransitionPublic(
        version=version,
        from_stage=Stage(transition.from_stage),
        to_stage=Stage(transition.to_stage),
        reason=transition.reason,
        actor=transition.actor,
        at=transition.created_at,
    )


def stage_history(session: Session, model: RegisteredModel) -> list[StageTransitionPublic]:
    versions = session.exec(select(ModelVersion).where(ModelVersion.model_id == model.id)).all()
    numbers = {v.id: v.version for v in versions}
    ids = [i for i in numbers if i is not None]
    return [transition_public(t, numbers[t.model_version_id]) for t in _transitions(session, ids)]


def version_public(
    session: Session, model: RegisteredModel, version: ModelVersion
) -> ModelVersionPublic:
    return ModelVersionPublic(
        model=model.name,
        version=version.version,
        stage=current_stage(session, version),
        artifact_sha256=version.artifact_sha256,
        fingerprint=version.fingerprint,
        estimator_class=version.estimator_class,
        source=version.source,
        input_schema=version.input_schema,
        metrics=version.metrics,
        gate=version.lineage.get("gate", {}),
        dataset_version_id=version.dataset_version_id,
        run_id=version.run_id,
        created_at=version.created_at,
        created_by=version.created_by,
    )


def lineage_summary(session: Session, version: ModelVersion) -> dict[str, Any]:
    """The part of a version's lineage that travels with each decision."""
    return {**_fixed_summary(version), "stage": current_stage(session, version).value}


def lineage_public(
    session: Session,
    model: RegisteredModel,
    version: ModelVersion,
    *,
    role: Role,
    min_cell_size: int,
) -> LineagePublic:
    """The whole lineage document. Compliance and admin read it as recorded; for other roles its
    figures by group lose the cells of fewer than ``min_cell_size`` rows (``core.cells``)."""
    lineage = version.lineage
    by_group = lineage.get("metrics_by_group")
    if isinstance(by_group, dict) and not cells.sees_every_cell(role):
        lineage = {
            **lineage,
            "metrics_by_group": cells.suppress_metrics_by_group(by_group, min_cell_size, "rows"),
        }
    if isinstance(lineage.get("proxies"), dict) and not cells.sees_every_cell(role):
        lineage = {**lineage, "proxies": proxies.without_group_counts(lineage["proxies"])}
    history = [h for h in stage_history(session, model) if h.version == version.version]
    return LineagePublic(
        model=model.name,
        version=version.version,
        stage=current_stage(session, version),
        lineage=lineage,
        stage_history=history,
    )


def _fixed_summary(version: ModelVersion) -> dict[str, Any]:
    """The summary without the stage: everything in it is fixed when the version is registered."""
    lineage = version.lineage
    data = lineage.get("dataset", {})
    return {
        "model_version_created_at": version.created_at.isoformat(),
        "source": version.source,
        "run_id": version.run_id,
        "artifact_sha256": version.artifact_sha256,
        "fingerprint": version.fingerprint,
        "estimator": lineage.get("estimator", {}).get("class"),
        "dataset": {
            k: data.get(k)
            for k in ("id", "name", "version", "repo", "path", "commit", "md5", "sha256")
        },
        "seeds": lineage.get("seeds"),
        "gate": lineage.get("gate"),
        "code": lineage.get("code"),
        "outlier_detector": {
            k: (lineage.get("outlier_detector") or {}).get(k)
            for k in ("method", "quantile", "threshold", "validation_outlier_rate")
        },
        "trained_at": lineage.get("timing", {}).get("finished_at"),
    }


@dataclass(frozen=True)
class VersionView:
    """What a decision record shows of its model version: protected inputs, the context keys
    its spec declares public, and the lineage summary."""

    protected: tuple[str, ...]
    public_context: frozenset[str]
    lineage: dict[str, Any]


@dataclass(frozen=True)
class _Fixed:
    protected: tuple[str, ...]
    public_context: frozenset[str]
    summary: dict[str, Any]


_FIXED: dict[tuple[int, str, datetime], _Fixed] = {}
_FIXED_LOCK = threading.Lock()
_FIXED_MAX = 512


def version_view(session: Session, name: str, version: int) -> VersionView:
    """One query for the version's identity and current stage; the rest is cached.

    A version row never changes once registered, so its parsed summary is kept, keyed by id,
    artifact hash and creation time (never reused, even when a test database is recreated).
    Only the stage moves, and it is read every time.
    """
    latest = (
        select(StageTransition.to_stage)
        .where(StageTransition.model_version_id == ModelVersion.id)
        .order_by(col(StageTransition.created_at).desc(), col(StageTransition.id).desc())
        .limit(1)
        .scalar_subquery()
    )
    row = session.exec(
        select(ModelVersion.id, ModelVersion.artifact_sha256, ModelVersion.created_at, latest)
        .join(RegisteredModel, col(RegisteredModel.id) == ModelVersion.model_id)
        .where(RegisteredModel.name == name, ModelVersion.version == version)
    ).first()
    if row is None:
        raise NotFound(
            f"model {name!r} has no version {version}", details={"model": name, "version": version}
        )
    version_id, sha256, created_at, stage = row
    assert version_id is not None  # a primary key read back from the database
    key = (version_id, str(sha256), created_at)
    with _FIXED_LOCK:
        fixed = _FIXED.get(key)
    if fixed is None:
        found = session.get(ModelVersion, version_id)
        assert found is not None
        fixed = _Fixed(
            protected=tuple(p["name"] for p in found.input_schema.get("protected", [])),
            public_context=frozenset((found.lineage.get("spec") or {}).get("public_context") or []),
            summary=_fixed_summary(found),
        )
        with _FIXED_LOCK:
            if len(_FIXED) >= _FIXED_MAX:
                _FIXED.clear()
            _FIXED[key] = fixed
    return VersionView(
        protected=fixed.protected,
        public_context=fixed.public_context,
        lineage={**fixed.summary, "stage": (stage or Stage.none.value)},
    )


def model_public(
    session: Session, model: RegisteredModel, at: datetime | None = None, stage: Stage | None = None
) -> ModelPublic:
    versions = list(
        session.exec(
            select(ModelVersion)
            .where(ModelVersion.model_id == model.id)
            .order_by(col(ModelVersion.version))
        ).all()
    )
    stages = stages_at(session, [v.id for v in versions if v.id is not None], at)
    summaries = [
        ModelVersionSummary(
            version=v.version,
            stage=stages[v.id],
            artifact_sha256=v.artifact_sha256,
            fingerprint=v.fingerprint,
            gate_passed=v.gate_passed,
            created_at=v.created_at,
        )
        for v in versions
        if v.id is not None and (at is None or v.created_at <= at)
    ]
    if stage is not None:
        summaries = [s for s in summaries if s.stage is stage]
    return ModelPublic(
        name=model.name,
        description=model.description,
        created_at=model.created_at,
        created_by=model.created_by,
        versions=summaries,
    )


def list_models(*, session: Session, page: Page) -> list[RegisteredModel]:
    query = select(RegisteredModel).order_by(col(RegisteredModel.id)).limit(page.limit)
    if page.cursor is not None:
        query = query.where(col(RegisteredModel.id) > page.cursor)
    return list(session.exec(query).all())
