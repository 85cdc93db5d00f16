from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from core.auth.models import Role
from core.auth.schemas import Principal
from core.bodies import parse_json_object
from core.deps import SessionDep, SettingsDep, allow
from core.errors import InvalidInput
from core.pagination import Paged, PageDep, RowId, next_cursor
from lineage import mlflow_import, registry, service
from lineage.artifacts import ArtifactStore
from lineage.data_sources import DataPolicy
from lineage.external import ExternalRegistration, register_external
from lineage.mlflow_import import MlflowImport
from lineage.models import ModelVersion, RegisteredModel, Stage
from lineage.runner import execute_run
from lineage.schemas import (
    DatasetCreate,
    DatasetPublic,
    LineagePublic,
    ModelPublic,
    ModelVersionPublic,
    RunPublic,
    StageChange,
    StageTransitionPublic,
)
from lineage.spec import NAME_PATTERN, load_spec_text

router = APIRouter()

Writer = Annotated[Principal, Depends(allow(Role.data_scientist))]
Reader = Annotated[Principal, Depends(allow(Role.data_scientist, Role.compliance))]
ModelName = Annotated[str, Path(pattern=NAME_PATTERN)]
VersionNumber = Annotated[int, Path(ge=1)]


# Datasets ---------------------------------------------------------------------------------------


@router.post(
    "/datasets",
    response_model=DatasetPublic,
    status_code=status.HTTP_201_CREATED,
    tags=["datasets"],
    summary="Register a version of a DVC-tracked CSV or Parquet file",
    responses={
        200: {"model": DatasetPublic, "description": "already registered: the existing version"}
    },
)
def register_dataset(
    principal: Writer,
    body: DatasetCreate,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> DatasetPublic:
    dataset, created = service.register_dataset(
        session=session,
        name=body.name,
        repo=body.repo,
        path=body.path,
        rev=body.rev,
        actor=principal.key_id,
        policy=DataPolicy.from_settings(settings),
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return service.dataset_public(dataset)


@router.get("/datasets", response_model=Paged[DatasetPublic], tags=["datasets"])
def list_datasets(
    session: SessionDep,
    _principal: Reader,
    page: PageDep,
    name: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
) -> Paged[DatasetPublic]:
    rows = service.list_datasets(session=session, page=page, name=name)
    return Paged(
        data=[service.dataset_public(d) for d in rows],
        count=len(rows),
        next_cursor=next_cursor(rows, page),
    )


@router.get("/datasets/{dataset_id}", response_model=DatasetPublic, tags=["datasets"])
def get_dataset(dataset_id: RowId, session: SessionDep, _principal: Reader) -> DatasetPublic:
    return service.dataset_public(service.get_dataset(session=session, dataset_id=dataset_id))


# Runs -------------------------------------------------------------------------------------------

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")


async def spec_body(request: Request, _principal: Writer) -> dict[str, Any]:
    """A spec as JSON, or as YAML with a YAML content type. Only safe YAML loading is used.

    It depends on the role check, so no body is read for a caller who may not train; parsing
    runs off the event loop.
    """
    raw = await request.body()
    return await run_in_threadpool(parse_spec_body, raw)


def parse_spec_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise InvalidInput(
            "the request body must hold a training spec",
            details=[{"field": "", "message": "empty body"}],
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(
            "the spec is not valid UTF-8", details=[{"field": "", "message": "bad encoding"}]
        ) from None
    return load_spec_text(text)


SPEC_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "/runs",
    response_model=RunPublic,
    status_code=status.HTTP_202_ACCEPTED,
    tags=["runs"],
    summary="Validate a training spec and queue a run",
    openapi_extra=SPEC_OPENAPI,
)
def create_run(
    principal: Writer,
    spec: Annotated[dict[str, Any], Depends(spec_body)],
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    background: BackgroundTasks,
) -> JSONResponse:
    run = service.create_run(
        session=session,
        spec_data=spec,
        actor=principal.key_id,
        policy=DataPolicy.from_settings(settings),
        limits=service.cost_limits(settings),
    )
    assert run.id is not None
    public = service.run_public(session, run)
    # Background tasks start after the session has committed, so the job always finds its run.
    background.add_task(request.app.state.executor.submit, execute_run, settings, run.id)
    return JSONResponse(
        public.model_dump(mode="json"),
        status_code=status.HTTP_202_ACCEPTED,
        headers={"Location": f"/api/v1/runs/{run.id}"},
        background=background,
    )


@router.get("/runs", response_model=Paged[RunPublic], tags=["runs"])
def list_runs(session: SessionDep, _principal: Reader, page: PageDep) -> Paged[RunPublic]:
    rows = service.list_runs(session=session, page=page)
    return Paged(
        data=[service.run_public(session, r) for r in rows],
        count=len(rows),
        next_cursor=next_cursor(rows, page),
    )


@router.get("/runs/{run_id}", response_model=RunPublic, tags=["runs"])
def get_run(run_id: RowId, session: SessionDep, _principal: Reader) -> RunPublic:
    return service.run_public(session, service.get_run(session=session, run_id=run_id))


@router.post(
    "/runs/{run_id}/cancel",
    response_model=RunPublic,
    status_code=status.HTTP_202_ACCEPTED,
    tags=["runs"],
    summary="Cancel a run: a queued one at once, a running one as its process is stopped",
)
def cancel_run(run_id: RowId, session: SessionDep, principal: Writer) -> RunPublic:
    return service.cancel_run(session=session, run_id=run_id, actor=principal.key_id)


# Registry ---------------------------------------------------------------------------------------


def valid_model(name: ModelName, session: SessionDep) -> RegisteredModel:
    return registry.get_model(session=session, name=name)


def valid_version(
    name: ModelName, version: VersionNumber, session: SessionDep
) -> tuple[RegisteredModel, ModelVersion]:
    return registry.get_version(session=session, name=name, version=version)


ModelDep = Annotated[RegisteredModel, Depends(valid_model)]
VersionDep = Annotated[tuple[RegisteredModel, ModelVersion], Depends(valid_version)]


@router.get("/models", response_model=Paged[ModelPublic], tags=["models"])
def list_models(session: SessionDep, _principal: Reader, page: PageDep) -> Paged[ModelPublic]:
    rows = registry.list_models(session=session, page=page)
    return Paged(
        data=[registry.model_public(session, m) for m in rows],
        count=len(rows),
        next_cursor=next_cursor(rows, page),
    )


@router.get(
    "/models/{name}",
    response_model=ModelPublic,
    tags=["models"],
    summary="A model and its versions; with `at`, each version's stage at that moment",
)
def get_model(
    _principal: Reader,
    model: ModelDep,
    session: SessionDep,
    at: Annotated[
        datetime | None, Query(description="ISO time with zone, e.g. 2026-03-03T12:00:00Z")
    ] = None,
    stage: Annotated[Stage | None, Query(description="only versions in this stage")] = None,
) -> ModelPublic:
    if at is not None and at.tzinfo is None:
        raise InvalidInput(
            "at must include a time zone", details=[{"field": "at", "message": "add Z or +00:00"}]
        )
    return registry.model_public(session, model, at=at, stage=stage)


@router.get(
    "/models/{name}/versions/{version}",
    response_model=ModelVersionPublic,
    # The recorded documents show exactly their keys: no default is added.
    response_model_exclude_unset=True,
    tags=["models"],
)
def get_version(_principal: Reader, found: VersionDep, session: SessionDep) -> ModelVersionPublic:
    return registry.version_public(session, *found)


@router.get(
    "/models/{name}/versions/{version}/lineage",
    response_model=LineagePublic,
    response_model_exclude_unset=True,
    tags=["models"],
    summary="Everything behind a model version, in one document",
)
def get_lineage(
    principal: Reader, found: VersionDep, session: SessionDep, settings: SettingsDep
) -> LineagePublic:
    return registry.lineage_public(
        session, *found, role=principal.role, min_cell_size=settings.min_cell_size
    )


@router.get(
    "/models/{name}/stage-history",
    response_model=list[StageTransitionPublic],
    tags=["models"],
    summary="Every stage change of every version: who, when, from, to and why",
)
def get_stage_history(
    _principal: Reader, model: ModelDep, session: SessionDep
) -> list[StageTransitionPublic]:
    return registry.stage_history(session, model)


async def upload_body(request: Request, _principal: Writer) -> dict[str, Any]:
    """The registration document: read only after the role check, parsed off the event loop
    (it may be hundreds of megabytes)."""
    raw = await request.body()
    return await run_in_threadpool(parse_json_object, raw)


UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": ExternalRegistration.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
            }
        },
    }
}


@router.post(
    "/models/{name}/versions",
    response_model=ModelVersionPublic,
    response_model_exclude_unset=True,
    status_code=status.HTTP_201_CREATED,
    tags=["models"],
    summary="Register a version trained outside govern (skops artifact plus lineage)",
    openapi_extra=UPLOAD_OPENAPI,
)
def register_external_version(
    principal: Writer,
    name: ModelName,
    body: Annotated[dict[str, Any], Depends(upload_body)],
    session: SessionDep,
    settings: SettingsDep,
) -> ModelVersionPublic:
    model, version = register_external(
        session=session,
        store=ArtifactStore(settings.artifacts),
        name=name,
        data=body,
        actor=principal.key_id,
        max_unpacked=4 * settings.max_artifact_bytes,
        policy=DataPolicy.from_settings(settings),
    )
    return registry.version_public(session, model, version)


@router.post(
    "/imports/mlflow",
    response_model=ModelVersionPublic,
    response_model_exclude_unset=True,
    status_code=status.HTTP_201_CREATED,
    tags=["models"],
    summary="Import an MLflow model version (sklearn, xgboost or lightgbm flavour, in its safe "
    "format) as a govern version, with its run's lineage",
)
def import_mlflow(
    principal: Writer, body: MlflowImport, session: SessionDep, settings: SettingsDep
) -> ModelVersionPublic:
    uri = body.tracking_uri.rstrip("/")
    if uri not in {u.rstrip("/") for u in settings.mlflow_tracking_uris}:
        raise InvalidInput(
            "tracking_uri: not a tracking server govern may read from",
            details=[
                {
                    "field": "tracking_uri",
                    "message": "not one of GOV_MLFLOW_TRACKING_URIS"
                    + ("" if settings.mlflow_tracking_uris else " (none is configured)"),
                }
            ],
        )
    name = mlflow_import.govern_name(body.model, body.name)
    fetched = mlflow_import.fetch(
        uri, body.model, body.version, settings.max_artifact_bytes, settings.mlflow_timeout_s
    )
    model, version = mlflow_import.import_version(
        session=session,
        store=ArtifactStore(settings.artifacts),
        fetched=fetched,
        name=name,
        described=body.describe,
        actor=principal.key_id,
        max_unpacked=4 * settings.max_artifact_bytes,
        policy=DataPolicy.from_settings(settings),
    )
    return registry.version_public(session, model, version)


@router.post(
    "/models/{name}/versions/{version}/stage",
    response_model=StageTransitionPublic,
    status_code=status.HTTP_201_CREATED,
    tags=["models"],
    summary="Move a version to staging, production or archived",
)
def change_stage(
    name: ModelName,
    version: VersionNumber,
    body: StageChange,
    session: SessionDep,
    principal: Writer,
) -> StageTransitionPublic:
    transition = registry.change_stage(
        session=session,
        name=name,
        version=version,
        stage=body.stage,
        reason=body.reason,
        actor=principal.key_id,
    )
    return registry.transition_public(transition, version)
