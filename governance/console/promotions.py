"""Console pages for promotions: the list, and one promotion with its evidence, its roll-out and
every step; a validator approves or rejects it there, with a rationale (the same service calls
as ``POST /api/v1/promotions/{id}/approve`` and ``.../reject``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from core.db import transaction
from core.deps import SessionDep, now_of
from core.errors import GovernanceError, InvalidInput
from core.pagination import Page
from governance.console import auth, forms, nav
from governance.console.auth import PromotionReader, PromotionValidator
from governance.console.render import PREFIX, page, see_other
from governance.promotion import service

router = APIRouter(prefix=PREFIX, include_in_schema=False)

PromotionId = Annotated[str, Path(max_length=64)]
PAGE_ROWS = 50
STATUSES = ("gathering", "requested", "rolling_out", "rejected", "applied", "rolled_back", "failed")


@router.get("/promotions", response_class=HTMLResponse)
def promotions_page(
    request: Request,
    session: SessionDep,
    principal: PromotionReader,
    status: Annotated[Literal[STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
    cursor: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> HTMLResponse:
    """Promotions, newest first; those waiting for a validator can be picked out."""
    rows = service.listing(session, principal, Page(limit=PAGE_ROWS, cursor=cursor), status)
    return page(
        request,
        "promotions.html",
        {
            "promotions": [service.public(session, p, evidence_too=False) for p in rows],
            "status": status,
            "statuses": STATUSES,
            "next": rows[-1].id if len(rows) == PAGE_ROWS else None,
        },
    )


def _context(session: Session, principal: Any, promotion_id: str) -> dict[str, Any]:
    shown = service.read(session, promotion_id, principal)
    return {
        "p": shown,
        "may_decide": nav.may(principal, nav.VALIDATORS) and shown["status"] == "requested",
        "problems": [],
    }


@router.get("/promotions/{promotion_id}", response_class=HTMLResponse)
def promotion_page(
    promotion_id: PromotionId, request: Request, session: SessionDep, principal: PromotionReader
) -> HTMLResponse:
    return page(request, "promotion.html", _context(session, principal, promotion_id))


@router.post(
    "/promotions/{promotion_id}/decision",
    response_class=HTMLResponse,
    dependencies=[auth.CsrfChecked],
)
def decide_promotion(
    promotion_id: PromotionId,
    request: Request,
    principal: PromotionValidator,
    action: Annotated[Literal["approve", "reject"], Form()],
    rationale: Annotated[str, Form(max_length=4000)],
) -> Response:
    """A validator's approval or rejection; a refusal (their own version, gaps in the evidence,
    a rationale too short) is shown on the page, in words."""
    try:
        with transaction(request.app.state.sessions) as session:
            if len(rationale.strip()) < 10:
                raise InvalidInput.at("rationale", "at least 10 characters: say why, in words")
            act = service.approve if action == "approve" else service.reject
            promotion = act(session, promotion_id, rationale.strip(), principal, now_of(request))
            endpoint = promotion.endpoint
    except GovernanceError as exc:
        if exc.status_code not in (403, 409, 422):
            raise
        with transaction(request.app.state.sessions) as session:
            shown = _context(session, principal, promotion_id)
        shown["problems"] = forms.problems_of(exc)
        return page(request, "promotion.html", shown, status_code=exc.status_code)
    if action == "approve":
        request.app.state.serving.forget(endpoint)
    return see_other(f"{PREFIX}/promotions/{promotion_id}")
