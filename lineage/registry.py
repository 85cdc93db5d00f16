"""The model registry: models, their versions, stages and what each role sees of them.

Read by every layer above lineage; imports nothing heavy (no pandas, sklearn or DVC), so the
CLI can list models fast.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import cells
from core.auth.models import Role
from core.errors import Conflict, InvalidInput, NotFound
from core.pagination import Page
from lineage.input_schema import InputSchema
from lineage.models import (
    ModelVersion,
    RegisteredModel,
    Stage,
    StageTransition,
)
from lineage.schemas import (
    LineagePublic,
    ModelPublic,
    ModelVersionPublic,
    ModelVersionSummary,
    StageTransitionPublic,
)


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
        lineage = {**lineage, "proxies": cells.without_group_counts(lineage["proxies"])}
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
            protected=tuple(InputSchema.from_document(found.input_schema).protected_names),
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
