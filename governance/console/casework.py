"""Console pages for notices and appeal cases: the same services and roles as the API routes
(``governance.casework``), every form with its CSRF token, every change answered with a redirect
to the page that shows it (or the form again, with its problems in words)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from core.auth.models import Role
from core.auth.schemas import Principal
from core.db import transaction
from core.deps import SessionDep, now_of
from core.errors import GovernanceError, InvalidInput
from core.pagination import Page
from explain import service as explain_service
from governance.casework import appeals, awaiting, service
from governance.casework.router import letter_response
from governance.console import auth, forms, nav
from governance.console.auth import Assigner, CaseDecider, CaseReader, Notifier
from governance.console.render import HEADERS, PREFIX, page, see_other

router = APIRouter(prefix=PREFIX, include_in_schema=False)

DecisionId = Annotated[str, Path(max_length=64)]
CaseId = Annotated[str, Path(max_length=64)]
PAGE_ROWS = 50
AWAITING_ROWS = 20


def _case_path(case_id: str) -> str:
    return f"{PREFIX}/cases/{auth.quoted(case_id)}"


@router.get("/notices", response_class=HTMLResponse)
def notices_page(
    request: Request,
    session: SessionDep,
    principal: Notifier,
    state: Annotated[Literal["", "unsent", "due_soon", "overdue", "held", "sent"], Query()] = "",
    cursor: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> HTMLResponse:
    """Notices by delivery clock (``GET /api/v1/notices``), newest first."""
    settings = request.app.state.settings
    now = now_of(request)
    rows, counts = service.listing(
        session, settings, principal, Page(limit=PAGE_ROWS, cursor=cursor), state or None, now
    )
    # The denials nobody has made a notice for, the most urgent first (GET .../awaiting).
    waiting: list[dict[str, Any]] = []
    waiting_counts: dict[str, int] = {}
    for clock in ("overdue", "due_soon"):
        found, waiting_counts, _ = awaiting.listing(
            session, settings, principal, Page(limit=AWAITING_ROWS), clock, now
        )
        waiting.extend(found)
    return page(
        request,
        "notices.html",
        {
            "notices": [service.public(n, settings, now) for n in rows],
            "waiting": waiting[:AWAITING_ROWS],
            "waiting_counts": waiting_counts,
            "watch_days": settings.notice_watch_days,
            "counts": counts,
            "state": state,
            "next": rows[-1].id if len(rows) == PAGE_ROWS else None,
            "deadline_days": settings.notice_deadline_days,
        },
    )


@router.post(
    "/decisions/{decision_id}/notice", response_class=HTMLResponse, dependencies=[auth.CsrfChecked]
)
def make_notice(decision_id: DecisionId, request: Request, principal: Notifier) -> Response:
    """Make the decision's notice (``POST /api/v1/decisions/{id}/notice``), then show it."""
    with transaction(request.app.state.sessions) as session:
        service.generate(
            session,
            request.app.state.explainers,
            request.app.state.settings,
            decision_id,
            principal,
            now_of(request),
        )
    return see_other(f"{PREFIX}/decisions/{auth.quoted(decision_id)}#notice")


@router.get("/decisions/{decision_id}/notice.pdf")
def notice_pdf(decision_id: DecisionId, session: SessionDep, principal: Notifier) -> Response:
    notice = service.get(session, decision_id, principal, "pdf")
    return Response(
        notice.pdf or b"",
        media_type="application/pdf",
        headers={**HEADERS, "Content-Disposition": f'inline; filename="notice-{decision_id}.pdf"'},
    )


@router.post(
    "/decisions/{decision_id}/notice/sent",
    response_class=HTMLResponse,
    dependencies=[auth.CsrfChecked],
)
def notice_sent(
    decision_id: DecisionId,
    request: Request,
    principal: Notifier,
    channel: Annotated[Literal["mail", "email", "portal", "in_person"], Form()],
) -> Response:
    with transaction(request.app.state.sessions) as session:
        service.mark_sent(session, decision_id, None, channel, principal, now_of(request))
    return see_other(f"{PREFIX}/decisions/{auth.quoted(decision_id)}#notice")


def notice_of(
    session: Session, request: Request, principal: Principal, decision_id: str
) -> dict[str, Any] | None:
    """The decision page's notice section: the notice, or None (and nothing for other roles)."""
    if not nav.may(principal, nav.NOTIFIERS):
        return None
    found = service.existing(session, decision_id)
    if found is None:
        return {"exists": False}
    return {"exists": True, **service.public(found, request.app.state.settings, now_of(request))}


@router.get("/cases", response_class=HTMLResponse)
def cases_page(
    request: Request,
    session: SessionDep,
    principal: CaseReader,
    status: Annotated[Literal["", "open", "under_review", "decided", "closed"], Query()] = "",
    cursor: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> HTMLResponse:
    rows = appeals.list_cases(
        session, principal, Page(limit=PAGE_ROWS, cursor=cursor), status or None
    )
    now = now_of(request)
    return page(
        request,
        "cases.html",
        {
            "cases": [appeals.public(c, now) for c in rows],
            "status": status,
            "next": rows[-1].id if len(rows) == PAGE_ROWS else None,
        },
    )


def _case_context(
    session: Session, request: Request, principal: Principal, case_id: str
) -> dict[str, Any]:
    case = appeals.get_case(session, case_id, principal, "appeal.read")
    shown: dict[str, Any] = {"c": appeals.public(case, now_of(request)), "review": None}
    reviewing = case.status == appeals.UNDER_REVIEW and case.reviewer == principal.key_id
    if reviewing:
        shown["review"] = appeals.review(
            session, request.app.state.serving, request.app.state.explainers, case, principal
        )
    shown |= {
        "may_open_decision": nav.may(principal, nav.DECISION_READERS),
        "may_assign": nav.may(principal, nav.ASSIGNERS)
        and case.status in (appeals.OPEN, appeals.UNDER_REVIEW),
        "may_decide": reviewing and principal.key_id != case.opened_by,
        "may_close": case.status == appeals.DECIDED
        and (principal.role in (Role.compliance, Role.admin) or principal.key_id == case.reviewer),
        "problems": [],
    }
    return shown


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(
    case_id: CaseId, request: Request, session: SessionDep, principal: CaseReader
) -> HTMLResponse:
    return page(request, "case.html", _case_context(session, request, principal, case_id))


def _change(request: Request, principal: Principal, case_id: str, act: Any) -> Response:
    """Run a change to a case; on a refusal, the case page again with the problem in words."""
    try:
        with transaction(request.app.state.sessions) as session:
            act(session)
    except GovernanceError as exc:
        if exc.status_code not in (403, 409, 422):
            raise
        with transaction(request.app.state.sessions) as session:
            shown = _case_context(session, request, principal, case_id)
        shown["problems"] = forms.problems_of(exc)
        return page(request, "case.html", shown, status_code=exc.status_code)
    return see_other(_case_path(case_id))


@router.post(
    "/cases/{case_id}/assign", response_class=HTMLResponse, dependencies=[auth.CsrfChecked]
)
def assign_case(
    case_id: CaseId,
    request: Request,
    principal: Assigner,
    reviewer: Annotated[str, Form(max_length=32)],
) -> Response:
    return _change(
        request,
        principal,
        case_id,
        lambda s: appeals.assign(s, case_id, reviewer.strip(), principal, now_of(request)),
    )


@router.post(
    "/cases/{case_id}/decision", response_class=HTMLResponse, dependencies=[auth.CsrfChecked]
)
def decide_case(
    case_id: CaseId,
    request: Request,
    principal: CaseDecider,
    outcome: Annotated[Literal["upheld", "overturned", "referred"], Form()],
    rationale: Annotated[str, Form(max_length=8000)],
) -> Response:
    def act(session: Session) -> None:
        if len(rationale.strip()) < 20:
            raise InvalidInput.at("rationale", "at least 20 characters: say why, in words")
        appeals.decide(
            session,
            request.app.state.serving,
            request.app.state.explainers,
            case_id,
            outcome,
            rationale.strip(),
            None,
            principal,
            now_of(request),
        )

    return _change(request, principal, case_id, act)


@router.post("/cases/{case_id}/close", response_class=HTMLResponse, dependencies=[auth.CsrfChecked])
def close_case(case_id: CaseId, request: Request, principal: CaseDecider) -> Response:
    return _change(
        request, principal, case_id, lambda s: appeals.close(s, case_id, principal, now_of(request))
    )


@router.get("/cases/{case_id}/letter")
def case_letter(
    case_id: CaseId,
    request: Request,
    session: SessionDep,
    principal: CaseReader,
    format: Annotated[Literal["html", "pdf"], Query()] = "html",
) -> Response:
    case = appeals.letter(session, request.app.state.settings, case_id, principal, now_of(request))
    return letter_response(case, format == "pdf", HEADERS)


@router.get("/decisions/{decision_id}/appeal", response_class=HTMLResponse)
def appeal_form(
    decision_id: DecisionId, request: Request, session: SessionDep, _principal: Notifier
) -> HTMLResponse:
    """The appeal form: the applicant's statement and any corrected values."""
    return page(request, "appeal_form.html", _appeal_context(session, decision_id))


def _appeal_context(session: Session, decision_id: str) -> dict[str, Any]:
    logged = explain_service.logged_decision(session, decision_id)
    return {
        "decision_id": decision_id,
        "features": sorted(logged.features.items()),
        "problems": [],
        "statement": "",
    }


@router.post(
    "/decisions/{decision_id}/appeal",
    response_class=HTMLResponse,
    dependencies=[auth.CsrfChecked],
)
async def open_appeal(decision_id: DecisionId, request: Request, principal: Notifier) -> Response:
    submitted = await request.form(max_fields=200)
    statement = str(submitted.get("statement") or "").strip()
    overrides, problems = forms.overrides_of(submitted)
    if not statement:
        problems.append({"field": "statement", "message": "say what the applicant contests"})
    elif len(statement) > 4000:
        problems.append({"field": "statement", "message": "at most 4000 characters"})
    case_id = None
    if not problems:
        try:
            with transaction(request.app.state.sessions) as session:
                case_id = appeals.open_case(
                    session,
                    request.app.state.serving,
                    request.app.state.settings,
                    decision_id,
                    statement,
                    overrides,
                    [],
                    principal,
                    now_of(request),
                ).case_id
        except GovernanceError as exc:
            if exc.status_code not in (409, 422):
                raise
            problems = forms.problems_of(exc)
    if case_id is not None:
        return see_other(_case_path(case_id))
    with transaction(request.app.state.sessions) as session:
        shown = _appeal_context(session, decision_id)
    shown |= {"problems": problems, "statement": statement}
    return page(request, "appeal_form.html", shown, status_code=422)
