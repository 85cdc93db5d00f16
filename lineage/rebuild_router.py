"""Rebuild routes: start a rebuild of a model version or of the model behind a decision."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Request, status
from fastapi.responses import JSONResponse

from governance.audit import access
from governance.auth.models import Role
from governance.auth.schemas import Principal
from governance.deps import SessionDep, SettingsDep, allow
from governance.errors import Forbidden
from governance.pagination import Paged, PageDep, RowId, next_cursor
from lineage import rebuild, service
from lineage.models import Rebuild, RunStatus
from lineage.router import VersionDep
from lineage.schemas import RebuildPublic
from serving.service import get_decision

router = APIRouter(tags=["rebuilds"])

Rebuilder = Annotated[Principal, Depends(allow(Role.data_scientist, Role.compliance))]
DecisionRebuilder = Annotated[
    Principal, Depends(allow(Role.data_scientist, Role.compliance, Role.appeals))
]
DecisionId = Annotated[str, Path(max_length=64)]


def rebuild_public(found: Rebuild) -> RebuildPublic:
    assert found.id is not None
    return RebuildPublic(
        id=found.id,
        model=found.model_name,
        version=found.version,
        decision_id=found.decision_id,
        status=RunStatus(found.status),
        progress=found.progress,
        message=found.message,
        verdict=found.verdict,
        report=found.report,
        executor=found.executor,
        created_at=found.created_at,
        created_by=found.created_by,
        started_at=found.started_at,
        finished_at=found.finished_at,
    )


def _accepted(
    found: Rebuild, request: Request, settings: SettingsDep, background: BackgroundTasks
) -> JSONResponse:
    assert found.id is not None
    # Background tasks start after the session has committed, so the job finds its row.
    background.add_task(
        request.app.state.executor.submit, rebuild.execute_rebuild, settings, found.id
    )
    return JSONResponse(
        rebuild_public(found).model_dump(mode="json"),
        status_code=status.HTTP_202_ACCEPTED,
        headers={"Location": f"/api/v1/rebuilds/{found.id}"},
        background=background,
    )


@router.post(
    "/models/{name}/versions/{version}/rebuilds",
    response_model=RebuildPublic,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Rebuild this version from its recorded lineage and compare (202; poll the rebuild)",
)
def start_rebuild(
    principal: Rebuilder,
    found: VersionDep,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    background: BackgroundTasks,
) -> JSONResponse:
    model, version = found
    job = rebuild.create_rebuild(
        session=session,
        model=model,
        version=version,
        actor=principal.key_id,
        executor=request.app.state.executor.name,
    )
    return _accepted(job, request, settings, background)


@router.get(
    "/models/{name}/versions/{version}/rebuilds",
    response_model=Paged[RebuildPublic],
    summary="This version's rebuilds, newest first",
)
def list_rebuilds(
    _principal: Rebuilder, found: VersionDep, session: SessionDep, page: PageDep
) -> Paged[RebuildPublic]:
    rows = rebuild.list_rebuilds(session, found[1], page)
    return Paged(
        data=[rebuild_public(r) for r in rows], count=len(rows), next_cursor=next_cursor(rows, page)
    )


@router.post(
    "/decisions/{decision_id}/rebuild",
    response_model=RebuildPublic,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Rebuild the model behind this decision; the report says whether the decision "
    "replays identically on it",
)
def start_decision_rebuild(
    decision_id: DecisionId,
    session: SessionDep,
    settings: SettingsDep,
    principal: DecisionRebuilder,
    request: Request,
    background: BackgroundTasks,
) -> JSONResponse:
    record = get_decision(session, decision_id)
    assert record.model is not None
    assert record.version is not None
    model, version = service.get_version(session=session, name=record.model, version=record.version)
    job = rebuild.create_rebuild(
        session=session,
        model=model,
        version=version,
        actor=principal.key_id,
        executor=request.app.state.executor.name,
        decision_id=record.decision_id,
    )
    access.record(session, principal, "decision.rebuild", target=record.decision_id)
    return _accepted(job, request, settings, background)


@router.get(
    "/rebuilds/{rebuild_id}",
    response_model=RebuildPublic,
    summary="A rebuild's status, progress and report",
)
def get_rebuild(
    rebuild_id: RowId, session: SessionDep, principal: DecisionRebuilder
) -> RebuildPublic:
    found = rebuild.get_rebuild(session, rebuild_id)
    if principal.role is Role.appeals and found.decision_id is None:
        raise Forbidden("appeals may read only the rebuilds of a decision")
    return rebuild_public(found)
