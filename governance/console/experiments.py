"""Console pages for experiments: the list, and one experiment's report as the API gives it
(``GET /api/v1/experiments/{id}``), for data scientists and compliance (groups: compliance)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from core.deps import SessionDep
from core.pagination import Page
from governance.casework.router import now_of
from governance.console.auth import ExperimentReader
from governance.console.render import PREFIX, page
from governance.experiments import service

router = APIRouter(prefix=PREFIX, include_in_schema=False)

ExperimentId = Annotated[str, Path(max_length=64)]
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
