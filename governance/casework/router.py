"""Adverse-action notices: thin routes over ``governance.casework.service``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from core.auth.models import Role
from core.auth.schemas import Principal
from core.deps import SessionDep, allow
from core.pagination import PageDep
from governance.casework import schemas, service

router = APIRouter(tags=["notices"])

DecisionId = Annotated[str, Path(max_length=64)]
Notifier = Annotated[Principal, Depends(allow(Role.compliance, Role.appeals))]
Reviewer = Annotated[Principal, Depends(allow(Role.compliance))]
Format = Literal["json", "html", "pdf"]

DOCUMENT_TYPES = {
    "text/html": {"schema": {"type": "string"}},
    "application/pdf": {"schema": {"type": "string", "format": "binary"}},
}
# The JSON body is the response model; the notice is also served as HTML or PDF.
DOCUMENTS: dict[int | str, dict[str, Any]] = {200: {"content": DOCUMENT_TYPES}}


def now_of(request: Request) -> datetime:
    """The app's clock (tests move it; never sleep)."""
    now: datetime = request.app.state.clock()
    return now


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rationale: str = Field(
        min_length=10, max_length=4000, description="Why the held notice may be sent, in words"
    )


class SentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["mail", "email", "portal", "in_person"]
    sent_at: AwareDatetime | None = Field(default=None, description="Default: now")


def _chosen(fmt: Format | None, accept: str | None) -> Format:
    if fmt is not None:
        return fmt
    if accept and "application/pdf" in accept:
        return "pdf"
    return "html" if accept and "text/html" in accept else "json"


def _answer(
    notice: Any, request: Request, fmt: Format | None, accept: str | None, status: int = 200
) -> Response:
    chosen = _chosen(fmt, accept)
    if chosen == "html":
        return HTMLResponse(notice.html or "", status_code=status)
    if chosen == "pdf":
        name = f"notice-{notice.decision_id}.pdf"
        return Response(
            notice.pdf or b"",
            status_code=status,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{name}"'},
        )
    settings = request.app.state.settings
    body = service.public(notice, settings, now_of(request))
    return JSONResponse(_jsonable(body), status_code=status)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@router.post(
    "/decisions/{decision_id}/notice",
    summary="Make the adverse-action notice of an unfavourable decision (once; later calls "
    "return the same notice)",
    response_model=schemas.NoticePublic,
    responses={
        200: {"content": DOCUMENT_TYPES, "description": "the notice made earlier"},
        201: {
            "model": schemas.NoticePublic,
            "content": DOCUMENT_TYPES,
            "description": "made now",
        },
    },
)
def make_notice(
    decision_id: DecisionId,
    request: Request,
    session: SessionDep,
    principal: Notifier,
    format: Annotated[Format | None, Query()] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    notice, made = service.generate(
        session,
        request.app.state.explainers,
        request.app.state.settings,
        decision_id,
        principal,
        now_of(request),
    )
    return _answer(notice, request, format, accept, 201 if made else 200)


@router.get(
    "/decisions/{decision_id}/notice",
    summary="The stored notice: JSON, HTML (Accept: text/html or format=html) or PDF",
    response_model=schemas.NoticePublic,
    responses=DOCUMENTS,
)
def read_notice(
    decision_id: DecisionId,
    request: Request,
    session: SessionDep,
    principal: Notifier,
    format: Annotated[Format | None, Query()] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    chosen = _chosen(format, accept)
    notice = service.get(session, decision_id, principal, chosen)
    return _answer(notice, request, chosen, None)


@router.post(
    "/decisions/{decision_id}/notice/release",
    summary="Release a held notice after review, with the rationale (compliance)",
    response_model=schemas.NoticePublic,
)
def release_notice(
    decision_id: DecisionId,
    body: ReleaseIn,
    request: Request,
    session: SessionDep,
    principal: Reviewer,
) -> Response:
    notice = service.release(session, decision_id, body.rationale, principal, now_of(request))
    return _answer(notice, request, "json", None)


@router.post(
    "/decisions/{decision_id}/notice/sent",
    summary="Record that the notice was sent, when and how",
    response_model=schemas.NoticePublic,
)
def notice_sent(
    decision_id: DecisionId,
    body: SentIn,
    request: Request,
    session: SessionDep,
    principal: Notifier,
) -> Response:
    notice = service.mark_sent(
        session, decision_id, body.sent_at, body.channel, principal, now_of(request)
    )
    return _answer(notice, request, "json", None)


@router.get(
    "/notices",
    summary="Notices by delivery clock: unsent, due soon, overdue, held or sent; newest first",
    response_model=schemas.NoticeList,
)
def list_notices(
    request: Request,
    session: SessionDep,
    principal: Notifier,
    page: PageDep,
    state: Annotated[
        Literal["unsent", "due_soon", "overdue", "held", "sent"] | None, Query()
    ] = None,
) -> dict[str, Any]:
    settings = request.app.state.settings
    now = now_of(request)
    rows, counts = service.listing(session, settings, principal, page, state, now)
    listed: dict[str, Any] = _jsonable(
        {
            "data": [service.public(n, settings, now) for n in rows],
            "count": len(rows),
            "next_cursor": rows[-1].id if len(rows) == page.limit else None,
            "counts": counts,
            "deadline_days": settings.notice_deadline_days,
            "due_soon_days": settings.notice_due_soon_days,
            "as_of": now,
        }
    )
    return listed


@router.get(
    "/notices/stability",
    summary="The share of notices whose reasons were stable under other seeds, by model version",
    response_model=schemas.StabilityReport,
)
def notice_stability(session: SessionDep, principal: Reviewer) -> dict[str, Any]:
    return {"versions": service.stability_by_version(session, principal)}
