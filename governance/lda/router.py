"""Less discriminatory alternative searches: thin routes over ``governance.lda.service``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Request, Response
from fastapi.encoders import jsonable_encoder

from core.auth.models import Role
from core.auth.schemas import Principal
from core.deps import SessionDep, allow, now_of
from governance.lda import schemas, service

router = APIRouter(tags=["lda"])

Searcher = Annotated[Principal, Depends(allow(Role.data_scientist))]
Reader = Annotated[Principal, Depends(allow(Role.data_scientist, Role.compliance, Role.validator))]
SearchId = Annotated[str, Path(max_length=64)]


@router.post(
    "/lda-searches",
    status_code=202,
    response_model=schemas.SearchOut,
    response_model_exclude_unset=True,
    summary="Search for a less discriminatory alternative: every candidate of the space trained "
    "with full lineage on the executor (202; poll the search)",
)
def start_search(
    body: schemas.SearchIn,
    request: Request,
    session: SessionDep,
    principal: Searcher,
    background: BackgroundTasks,
) -> Any:
    state = request.app.state
    search = service.create(
        session,
        principal,
        body.model_dump(mode="json"),
        state.executor.name,
        now_of(request),
    )
    background.add_task(
        service.run, state.sessions, state.settings, state.executor, search.search_id
    )
    return jsonable_encoder(service.public(session, search))


@router.get(
    "/lda-searches/{search_id}",
    response_model=schemas.SearchOut,
    response_model_exclude_unset=True,
    summary="The search: its progress, every candidate's figures, the frontier and the "
    "alternatives",
)
def get_search(search_id: SearchId, session: SessionDep, principal: Reader) -> Any:
    return jsonable_encoder(service.read(session, search_id, principal))


@router.get(
    "/lda-searches/{search_id}/frontier.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}},
    summary="The candidates, the Pareto frontier and the alternatives, as a chart",
)
def frontier_chart(search_id: SearchId, session: SessionDep, principal: Reader) -> Response:
    service.read(session, search_id, principal)
    return Response(service.chart(service.get(session, search_id)), media_type="image/png")


@router.post(
    "/lda-searches/{search_id}/choice",
    response_model=schemas.SearchOut,
    response_model_exclude_unset=True,
    summary="Record which candidate was chosen and why (in the governance chain)",
)
def choose(
    search_id: SearchId,
    body: schemas.ChoiceIn,
    request: Request,
    session: SessionDep,
    principal: Searcher,
) -> Any:
    search = service.choose(
        session, search_id, body.candidate, body.rationale, principal, now_of(request)
    )
    return jsonable_encoder(service.public(session, search))
