"""Rebuild routes: start, read and cancel a rebuild of a model version or of a decision."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, status
from fastapi.responses import JSONResponse

from core.audit import access
from core.auth.models import Role
from core.auth.schemas import Principal
from core.deps import SessionDep, SettingsDep, allow
from core.limits import KeyLimiter
from core.pagination import Paged, PageDep, RowId, next_cursor
from lineage import registry
from lineage.models import Rebuild
from lineage.router import VersionDep
from rebuild import access as rebuild_access
from rebuild import service as rebuild_service
from rebuild.schemas import RebuildPublic
from serving.lookups import get_decision

router = APIRouter(tags=["rebuilds"])

Rebuilder = Annotated[Principal, Depends(allow(Role.data_scientist, Role.compliance))]
DecisionRebuilder = Annotated[
    Principal, Depends(allow(Role.data_scientist, Role.compliance, Role.appeals))
]
DecisionId = Annotated[str, Path(max_length=64)]
HeldDecision = Annotated[
    str | None,
    Query(
        max_length=64,
        description="The decision the rebuild belongs to; appeals keys must give it.",
    ),
]


def _limiter(request: Request) -> KeyLimiter:
    limiter: KeyLimiter = request.app.state.limiter
    return limiter


def _answer(
    found: Rebuild,
    created: bool,
    principal: Principal,
    request: Request,
    settings: SettingsDep,
    background: BackgroundTasks,
) -> JSONResponse:
    """202 with the job. A new one is queued after the session commits, so it finds its row; an
    existing one (a second request while it is active) is returned as it is."""
    assert found.id is not None
    if created:
        _limiter(request).admit(principal.key_id, "rebuilds")
        background.add_task(
            request.app.state.executor.submit, rebuild_service.execute_rebuild, settings, found.id
        )
    return JSONResponse(
        rebuild_access.public(found, principal).model_dump(mode="json", exclude_unset=True),
        status_code=status.HTTP_202_ACCEPTED,
        headers={"Location": f"/api/v1/rebuilds/{found.id}"},
        background=background,
    )


@router.post(
    "/models/{name}/versions/{version}/rebuilds",
    response_model=RebuildPublic,
    response_model_exclude_unset=True,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Rebuild this version from its recorded lineage and compare (202; poll the rebuild); "
    "while one is active, the same request returns it",
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
    job, created = rebuild_service.create_rebuild(
        session=session,
        model=model,
        version=version,
        actor=principal.key_id,
        executor=request.app.state.executor.name,
    )
    return _answer(job, created, principal, request, settings, background)


@router.get(
    "/models/{name}/versions/{version}/rebuilds",
    response_model=Paged[RebuildPublic],
    response_model_exclude_unset=True,
    summary="This version's rebuilds, newest first",
)
def list_rebuilds(
    principal: Rebuilder, found: VersionDep, session: SessionDep, page: PageDep
) -> Paged[RebuildPublic]:
    rows = rebuild_service.list_rebuilds(session, found[1], page)
    return Paged(
        data=[rebuild_access.public(r, principal) for r in rows],
        count=len(rows),
        next_cursor=next_cursor(rows, page),
    )


@router.post(
    "/decisions/{decision_id}/rebuild",
    response_model=RebuildPublic,
    response_model_exclude_unset=True,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Rebuild the model behind this decision; the report says whether the decision "
    "replays identically on it. While one is active, the same request returns it",
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
    model, version = registry.get_version(
        session=session, name=record.model, version=record.version
    )
    job, created = rebuild_service.create_rebuild(
        session=session,
        model=model,
        version=version,
        actor=principal.key_id,
        executor=request.app.state.executor.name,
        decision_id=record.decision_id,
    )
    access.record(session, principal, "decision.rebuild", target=record.decision_id)
    return _answer(job, created, principal, request, settings, background)


@router.get(
    "/decisions/{decision_id}/rebuilds",
    response_model=Paged[RebuildPublic],
    response_model_exclude_unset=True,
    summary="This decision's rebuilds, newest first",
)
def decision_rebuilds(
    decision_id: DecisionId, session: SessionDep, principal: DecisionRebuilder, page: PageDep
) -> Paged[RebuildPublic]:
    get_decision(session, decision_id)  # 404 for an unknown decision
    rows = rebuild_access.of_decision(session, decision_id, principal, page)
    return Paged(data=rows, count=len(rows), next_cursor=next_cursor(rows, page))


@router.get(
    "/rebuilds/{rebuild_id}",
    response_model=RebuildPublic,
    response_model_exclude_unset=True,
    summary="A rebuild's status, progress and report (appeals: give the decision_id it holds)",
)
def get_rebuild(
    rebuild_id: RowId,
    session: SessionDep,
    principal: DecisionRebuilder,
    decision_id: HeldDecision = None,
) -> RebuildPublic:
    return rebuild_access.read(session, rebuild_id, principal, decision_id)


@router.post(
    "/rebuilds/{rebuild_id}/cancel",
    response_model=RebuildPublic,
    response_model_exclude_unset=True,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Cancel a rebuild: a queued one at once, a running one as its process is stopped",
)
def cancel_rebuild(
    rebuild_id: RowId,
    session: SessionDep,
    principal: DecisionRebuilder,
    decision_id: HeldDecision = None,
) -> RebuildPublic:
    return rebuild_access.cancel(session, rebuild_id, principal, decision_id)
