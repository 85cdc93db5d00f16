"""The compliance workbench's routes: decision queries and exports, and the access trail."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import AwareDatetime
from sqlmodel import Session

from core.audit import access
from core.auth.models import Role
from core.auth.schemas import Principal
from core.db import transaction
from core.deps import SessionDep, SettingsDep, allow, now_of
from core.errors import InvalidInput
from core.pagination import Paged, SeqPageDep
from governance.compliance import annex_iv, card, decisions, dossier, html, inventory, trail
from governance.compliance.schemas import (
    DecisionRow,
    Dossier,
    Inventory,
    ModelCard,
    TechnicalDocumentation,
)
from lineage.router import VersionDep

router = APIRouter(tags=["compliance"])

Officer = Annotated[Principal, Depends(allow(Role.compliance))]
Format = Literal["json", "csv", "parquet"]
MEDIA = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}
# The other bodies a route may answer with, by media type (the JSON one is its response model).
TEXT = {"schema": {"type": "string"}}
HTML: dict[int | str, dict[str, Any]] = {200: {"content": {"text/html": TEXT}}}
EXPORTS: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/csv": TEXT,
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        }
    }
}


def _format(format_: Format | None, accept: str | None) -> Format:
    if format_ is not None:
        return format_
    if accept and "text/csv" in accept:
        return "csv"
    if accept and "application/vnd.apache.parquet" in accept:
        return "parquet"
    return "json"


def decision_filter(
    endpoint: Annotated[str | None, Query(max_length=100)] = None,
    model: Annotated[str | None, Query(max_length=100)] = None,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    route: Annotated[str | None, Query(max_length=40)] = None,
    subject_id: Annotated[str | None, Query(max_length=200)] = None,
    label: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[AwareDatetime | None, Query(description="created at or after")] = None,
    until: Annotated[AwareDatetime | None, Query(description="created before")] = None,
    outlier: Annotated[bool | None, Query(description="is_outlier logged as this")] = None,
    has_outcome: Annotated[bool | None, Query(description="an outcome was recorded")] = None,
    kind: Annotated[Literal["decision", "shadow", "rejected"], Query()] = "decision",
) -> decisions.DecisionFilter:
    if since is not None and until is not None and since >= until:
        raise InvalidInput.at("since", "must be before until")
    return decisions.DecisionFilter(
        endpoint=endpoint,
        model=model,
        version=version,
        route=route,
        subject_id=subject_id,
        label=label,
        since=since,
        until=until,
        outlier=outlier,
        has_outcome=has_outcome,
        kind=kind,
    )


FilterDep = Annotated[decisions.DecisionFilter, Depends(decision_filter)]


@router.get(
    "/decisions",
    response_model=Paged[DecisionRow],
    summary="Find logged decisions; page with next_cursor, or export the whole query as CSV "
    "(format=csv or Accept: text/csv) or Parquet (format=parquet), streamed",
    responses=EXPORTS,
)
def list_decisions(
    request: Request,
    session: SessionDep,
    principal: Officer,
    page: SeqPageDep,
    filters: FilterDep,
    format: Annotated[Format | None, Query(description="json (default), csv or parquet")] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    chosen = _format(format, accept)
    params = filters.params()
    if chosen == "json":
        rows, cursor = decisions.page(session, filters, page.limit, page.cursor)
        access.record(
            session,
            principal,
            "decisions.query",
            params={**params, "limit": page.limit, "cursor": page.cursor},
            rows=len(rows),
        )
        body = Paged[DecisionRow](
            data=[DecisionRow(**r) for r in rows], count=len(rows), next_cursor=cursor
        )
        return Response(body.model_dump_json(), media_type="application/json")
    return export_response(request, session, principal, filters, chosen)


def export_response(
    request: Request,
    session: Session,
    principal: Principal,
    filters: decisions.DecisionFilter,
    chosen: Literal["csv", "parquet"],
) -> StreamingResponse:
    """The whole query as CSV or Parquet, streamed; its access-trail entry (with the row count)
    is written when the stream ends. Shared by the API and the console."""
    sessions = request.app.state.sessions
    counter = [0]
    stream: Iterator[bytes]
    if chosen == "csv" and session.get_bind().dialect.name == "postgresql":
        stream = decisions.postgres_csv(sessions, filters, counter)
    elif chosen == "csv":
        stream = decisions.csv_chunks(decisions.walk(sessions, filters), counter)
    else:
        stream = decisions.parquet_chunks(decisions.walk(sessions, filters), counter)

    def recorded() -> Iterator[bytes]:
        yield from stream
        # The trail entry needs the row count, known only at the end of the stream.
        with transaction(sessions) as trail_session:
            access.record(
                trail_session,
                principal,
                "decisions.export",
                params={**filters.params(), "format": chosen},
                rows=counter[0],
            )

    return StreamingResponse(
        recorded(),
        media_type=MEDIA[chosen],
        headers={"Content-Disposition": f'attachment; filename="decisions.{chosen}"'},
    )


@router.get(
    "/audit/access-log",
    response_model=Paged[trail.AccessEntry],
    summary="Who read which decision data, when, with which query and how many rows; newest first",
)
def access_log(
    session: SessionDep,
    _principal: Officer,
    page: SeqPageDep,
    key_id: Annotated[str | None, Query(max_length=32)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    target: Annotated[str | None, Query(max_length=200)] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> Paged[trail.AccessEntry]:
    entries, cursor = trail.entries(
        session,
        limit=page.limit,
        cursor=page.cursor,
        key_id=key_id,
        action=action,
        target=target,
        since=since,
        until=until,
    )
    return Paged(data=entries, count=len(entries), next_cursor=cursor)


DossierReader = Annotated[
    Principal, Depends(allow(Role.compliance, Role.appeals, Role.data_scientist))
]


@router.get(
    "/decisions/{decision_id}/dossier",
    response_model=Dossier,
    summary="One document about one decision for an appeal or an examiner: the record, the "
    "model and its lineage, reasons, SHAP, a counterfactual, replay and chain verification; "
    "HTML with Accept: text/html or format=html",
    responses=HTML,
)
def decision_dossier(
    decision_id: Annotated[str, Path(max_length=64)],
    request: Request,
    session: SessionDep,
    principal: DossierReader,
    format: Annotated[Literal["json", "html"] | None, Query()] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    document = dossier.build(
        session, request.app.state.serving, request.app.state.explainers, decision_id, principal
    )
    if format == "html" or (format is None and accept and "text/html" in accept):
        return HTMLResponse(html.dossier_html(document))
    return JSONResponse(document)


Inventorist = Annotated[Principal, Depends(allow(Role.compliance, Role.data_scientist))]


@router.get(
    "/inventory",
    response_model=Inventory,
    summary="The model inventory for model risk management (SR 26-2 / OCC 2026-13; SR 11-7 "
    "superseded): every model version, its stage and history, owner, where it serves or served "
    "and when, decision count, last rebuild and fairness report; `at` answers what was in use then",
)
def model_inventory(
    session: SessionDep,
    _principal: Inventorist,
    status: Annotated[
        Literal["in_use", "in_development", "retired"] | None,
        Query(description="in_use: production or routed; in_development; retired: archived"),
    ] = None,
    at: Annotated[AwareDatetime | None, Query(description="as things stood at this moment")] = None,
) -> dict[str, Any]:
    items = inventory.inventory(session, status=status, at=at)
    return {
        "at": at.isoformat() if at else None,
        "status": status,
        "count": len(items),
        "versions": jsonable_encoder(items),
    }


@router.get(
    "/models/{name}/versions/{version}/technical-documentation",
    response_model=TechnicalDocumentation,
    summary="The EU AI Act's technical documentation (Annex IV) for this version, assembled from "
    "what govern records: each section evidenced, partly or missing, with the records it comes "
    "from; JSON or (Accept: text/html or format=html) HTML",
    responses=HTML,
)
def technical_documentation(
    principal: Inventorist,
    found: VersionDep,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    format: Annotated[Literal["json", "html"] | None, Query()] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    document = annex_iv.document(session, principal, settings, *found, now_of(request))
    if format == "html" or (format is None and accept and "text/html" in accept):
        return HTMLResponse(html.annex_iv_html(jsonable_encoder(document)))
    return JSONResponse(jsonable_encoder(document))


@router.get(
    "/models/{name}/versions/{version}/card",
    response_model=ModelCard,
    summary="The model card, as JSON or (Accept: text/html or format=html) as HTML",
    responses=HTML,
)
def model_card(
    principal: Inventorist,
    found: VersionDep,
    session: SessionDep,
    settings: SettingsDep,
    format: Annotated[Literal["json", "html"] | None, Query()] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    document = card.card(session, principal, settings, *found)
    if format == "html" or (format is None and accept and "text/html" in accept):
        return HTMLResponse(html.card_html(document))
    return JSONResponse(jsonable_encoder(document))
