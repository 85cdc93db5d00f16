"""Console pages for experiments (the list, and one experiment's report as
``GET /api/v1/experiments/{id}`` gives it) and for the searches for a less discriminatory
alternative (the list, and one search with its frontier chart)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from core.deps import SessionDep, now_of
from core.pagination import Page
from governance.console.auth import ExperimentReader, SearchReader
from governance.console.render import PREFIX, page
from governance.experiments import service
from governance.lda import service as lda

router = APIRouter(prefix=PREFIX, include_in_schema=False)

ExperimentId = Annotated[str, Path(max_length=64)]
SearchId = Annotated[str, Path(max_length=64)]
PAGE_ROWS = 50


@router.get("/experiments", response_class=HTMLResponse)
def experiments_page(
    request: Request,
    session: SessionDep,
    principal: ExperimentReader,
    cursor: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> HTMLResponse:
    rows = service.listing(session, principal, Page(limit=PAGE_ROWS, cursor=cursor), None)
    return page(
        request,
        "experiments.html",
        {
            "experiments": rows,
            "next": rows[-1].id if len(rows) == PAGE_ROWS else None,
        },
    )


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_page(
    experiment_id: ExperimentId,
    request: Request,
    session: SessionDep,
    principal: ExperimentReader,
) -> HTMLResponse:
    report = service.report(
        session, request.app.state.settings, experiment_id, principal, now_of(request)
    )
    return page(request, "experiment.html", {"r": report})


@router.get("/lda-searches", response_class=HTMLResponse)
def searches_page(
    request: Request,
    session: SessionDep,
    principal: SearchReader,
    cursor: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> HTMLResponse:
    """The searches for a less discriminatory alternative, newest first."""
    rows = lda.listing(session, principal, PAGE_ROWS, cursor)
    return page(
        request,
        "lda_searches.html",
        {"searches": rows, "next": rows[-1].id if len(rows) == PAGE_ROWS else None},
    )


@router.get("/lda-searches/{search_id}", response_class=HTMLResponse)
def search_page(
    search_id: SearchId, request: Request, session: SessionDep, principal: SearchReader
) -> HTMLResponse:
    """One search: its progress, the frontier chart, every candidate and the choice."""
    return page(request, "lda_search.html", {"s": lda.read(session, search_id, principal)})


@router.get("/lda-searches/{search_id}/frontier.png")
def search_chart(search_id: SearchId, session: SessionDep, principal: SearchReader) -> Response:
    lda.read(session, search_id, principal)
    return Response(lda.chart(lda.get(session, search_id)), media_type="image/png")
