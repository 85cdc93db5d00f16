"""Adverse-action notices: thin routes over ``governance.casework.service``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from core.auth.models import Role
from core.auth.schemas import Principal
from core.deps import SessionDep, allow, now_of
from core.pagination import PageDep, SeqPageDep
from core.responses import Scalar
from governance.casework import appeals, awaiting, schemas, service

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
    return JSONResponse(jsonable_encoder(body), status_code=status)


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
    listed: dict[str, Any] = jsonable_encoder(
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
    "/notices/awaiting",
    summary="Adverse decisions with no notice made yet, by delivery clock; newest first",
    response_model=schemas.AwaitingList,
)
def awaiting_notices(
    request: Request,
    session: SessionDep,
    principal: Notifier,
    page: SeqPageDep,
    state: Annotated[Literal["overdue", "due_soon", "later"] | None, Query()] = None,
) -> dict[str, Any]:
    settings = request.app.state.settings
    now = now_of(request)
    rows, counts, cursor = awaiting.listing(session, settings, principal, page, state, now)
    listed: dict[str, Any] = jsonable_encoder(
        {
            "data": rows,
            "count": len(rows),
            "next_cursor": cursor,
            "counts": counts,
            "watched_from": awaiting.Clock.of(settings, now).watched_from,
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


# Appeal cases -------------------------------------------------------------------------------

Opener = Annotated[Principal, Depends(allow(Role.compliance, Role.appeals))]
CaseReader = Annotated[Principal, Depends(allow(Role.compliance, Role.appeals, Role.reviewer))]
Deciders = Annotated[Principal, Depends(allow(Role.compliance, Role.reviewer))]
CaseId = Annotated[str, Path(max_length=64)]
Status = Literal["open", "under_review", "decided", "closed"]


class EvidenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(min_length=1, max_length=500)
    filename: str | None = Field(default=None, max_length=200)
    document_base64: str | None = Field(
        default=None,
        max_length=2_000_000,
        description="The document, base64: it is hashed (sha256, size) and not kept",
    )


class AppealIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    statement: str = Field(min_length=1, max_length=4000, description="The applicant's words")
    overrides: dict[str, Scalar | None] = Field(
        default_factory=dict,
        max_length=100,
        description="Corrected or new values of the model's features",
    )
    evidence: list[EvidenceIn] = Field(default_factory=list, max_length=10)


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reviewer: str = Field(min_length=1, max_length=32, description="The reviewer's key id")


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["upheld", "overturned", "referred"]
    rationale: str = Field(min_length=20, max_length=8000, description="Why, in words")
    label: Scalar | None = Field(
        default=None, description="An overturn: the class decided instead (default: favourable)"
    )


def _case(case: Any, request: Request) -> dict[str, Any]:
    body: dict[str, Any] = jsonable_encoder(appeals.public(case, now_of(request)))
    return body


@router.post(
    "/decisions/{decision_id}/appeals",
    status_code=201,
    response_model=schemas.AppealPublic,
    tags=["appeals"],
    summary="Open an appeal of a decision (one open case per decision)",
)
def open_appeal(
    decision_id: DecisionId,
    body: AppealIn,
    request: Request,
    session: SessionDep,
    principal: Opener,
) -> dict[str, Any]:
    case = appeals.open_case(
        session,
        request.app.state.serving,
        request.app.state.settings,
        decision_id,
        body.statement,
        body.overrides,
        [e.model_dump() for e in body.evidence],
        principal,
        now_of(request),
    )
    return _case(case, request)


@router.get(
    "/appeals",
    response_model=schemas.AppealList,
    tags=["appeals"],
    summary="Appeal cases, newest first (appeals keys see the cases they opened)",
)
def list_appeals(
    request: Request,
    session: SessionDep,
    principal: CaseReader,
    page: PageDep,
    status: Annotated[Status | None, Query()] = None,
) -> dict[str, Any]:
    rows = appeals.list_cases(session, principal, page, status)
    return {
        "data": [_case(c, request) for c in rows],
        "count": len(rows),
        "next_cursor": rows[-1].id if len(rows) == page.limit else None,
    }


@router.get(
    "/appeals/oversight",
    response_model=schemas.Oversight,
    tags=["appeals"],
    summary="Human oversight by model version: cases, overturn rate, time to decide, overdue",
)
def appeal_oversight(
    request: Request,
    session: SessionDep,
    principal: Reviewer,
    attribute: Annotated[
        str | None,
        Query(max_length=100, description="A protected attribute: the overturn rate by group"),
    ] = None,
) -> Any:
    return jsonable_encoder(
        appeals.oversight(
            session, request.app.state.settings, principal, now_of(request), attribute
        )
    )


@router.get(
    "/appeals/{case_id}",
    response_model=schemas.AppealPublic,
    tags=["appeals"],
    summary="One appeal case",
)
def read_appeal(
    case_id: CaseId, request: Request, session: SessionDep, principal: CaseReader
) -> dict[str, Any]:
    return _case(appeals.get_case(session, case_id, principal, "appeal.read"), request)


@router.post(
    "/appeals/{case_id}/assign",
    response_model=schemas.AppealPublic,
    tags=["appeals"],
    summary="Assign the reviewer (compliance); never the key that opened the case",
)
def assign_appeal(
    case_id: CaseId, body: AssignIn, request: Request, session: SessionDep, principal: Reviewer
) -> dict[str, Any]:
    case = appeals.assign(session, case_id, body.reviewer, principal, now_of(request))
    return _case(case, request)


@router.get(
    "/appeals/{case_id}/review",
    response_model=schemas.AppealReview,
    tags=["appeals"],
    summary="The original decision and the replay with the corrections: score, label, reasons "
    "and SHAP before and after, counterfactuals, out-of-distribution",
)
def review_appeal(
    case_id: CaseId, request: Request, session: SessionDep, principal: Deciders
) -> Any:
    case = appeals.get_case(session, case_id, principal, "appeal.review")
    return jsonable_encoder(
        appeals.review(
            session, request.app.state.serving, request.app.state.explainers, case, principal
        )
    )


@router.post(
    "/appeals/{case_id}/decision",
    response_model=schemas.AppealPublic,
    tags=["appeals"],
    summary="Decide the case (the assigned reviewer): upheld, overturned or referred, with reasons",
)
def decide_appeal(
    case_id: CaseId, body: DecisionIn, request: Request, session: SessionDep, principal: Deciders
) -> dict[str, Any]:
    case = appeals.decide(
        session,
        request.app.state.serving,
        request.app.state.explainers,
        case_id,
        body.outcome,
        body.rationale,
        None if body.label is None else str(body.label),
        principal,
        now_of(request),
    )
    return _case(case, request)


@router.post(
    "/appeals/{case_id}/close",
    response_model=schemas.AppealPublic,
    tags=["appeals"],
    summary="Close a decided case (its reviewer, or compliance)",
)
def close_appeal(
    case_id: CaseId, request: Request, session: SessionDep, principal: Deciders
) -> dict[str, Any]:
    return _case(appeals.close(session, case_id, principal, now_of(request)), request)


@router.get(
    "/appeals/{case_id}/letter",
    tags=["appeals"],
    summary="The letter to the applicant on a decided case: HTML (default) or PDF (format=pdf "
    "or Accept: application/pdf)",
    response_class=HTMLResponse,
    responses={200: {"content": DOCUMENT_TYPES}},
)
def appeal_letter(
    case_id: CaseId,
    request: Request,
    session: SessionDep,
    principal: CaseReader,
    format: Annotated[Literal["html", "pdf"] | None, Query()] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    case = appeals.letter(session, request.app.state.settings, case_id, principal, now_of(request))
    pdf = format == "pdf" or (format is None and bool(accept) and "application/pdf" in str(accept))
    return letter_response(case, pdf)


def letter_response(case: Any, pdf: bool, headers: dict[str, str] | None = None) -> Response:
    """The stored letter as HTML or PDF, naming its template and the hash of what is sent."""
    made = case.letter
    headers = {
        **(headers or {}),
        "X-Govern-Template": "{name} v{version} sha256:{sha256}".format(**made["template"]),
        "X-Govern-Document-Sha256": made["pdf_sha256" if pdf else "html_sha256"],
    }
    if pdf:
        name = f"appeal-{case.case_id}.pdf"
        return Response(
            case.letter_pdf,
            media_type="application/pdf",
            headers={**headers, "Content-Disposition": f'inline; filename="{name}"'},
        )
    return HTMLResponse(case.letter_html, headers=headers)
