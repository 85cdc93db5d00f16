"""Signing in to the console, its session cookie, CSRF, and what a refused page looks like.

The auth gate admits a console page by its session cookie (``ConsoleSessions.principal``) before
any body is read, and checks the page's roles exactly as the API checks its routes. A refused GET
is sent to the sign-in page with the reason; any other refusal is a page saying why. Every form
that changes something carries the session's CSRF token (``csrf_field`` in the templates); the
token is also accepted in an ``X-CSRF-Token`` header, which htmx sends.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope, Send

from core.auth import sessions
from core.auth.schemas import Principal
from core.config import Settings
from core.db import transaction
from core.deps import allow_signed_in
from core.errors import Forbidden, GovernanceError, Unauthorized
from core.middleware import has_body
from governance.console import forms, nav
from governance.console.render import HEADERS, PREFIX, page

COOKIE = "govern_session"
SIGN_IN = f"{PREFIX}/sign-in"
# Why a session ended, as the sign-in page says it; the redirect carries only the key.
WHY = {
    "sign_in_first": "Sign in to continue.",
    "signed_out": "You have signed out.",
    "expired": "Your session reached its time limit. Sign in again.",
    "idle": "Your session was idle too long. Sign in again.",
    "key_gone": "The API key you signed in with is no longer active (revoked or expired).",
}
_WHY_OF = {
    sessions.SIGNED_OUT: "signed_out",
    sessions.EXPIRED: "expired",
    sessions.IDLE: "idle",
    sessions.KEY_GONE: "key_gone",
}


class ConsoleSessions:
    """The ``CookieSessions`` the auth gate uses for console pages."""

    cookie = COOKIE

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self._factory = factory
        self._settings = settings

    async def principal(self, token: str) -> Principal:
        return await run_in_threadpool(self._principal, token)

    def _principal(self, token: str) -> Principal:
        with transaction(self._factory) as session:
            return sessions.principal_for(
                session, token, idle_timeout_s=self._settings.console_idle_timeout_s
            )

    async def refuse(self, scope: Scope, send: Send, exc: GovernanceError) -> None:
        request = Request(scope)
        if exc.status_code == 401 and scope.get("method") in {"GET", "HEAD"}:
            why = _WHY_OF.get(exc.message, "sign_in_first")
            target = scope.get("path", PREFIX)
            query = scope.get("query_string", b"").decode("latin-1")
            if query:
                target += "?" + query
            location = f"{SIGN_IN}?{urlencode({'why': why, 'next': target})}"
            response: Any = HTMLResponse(
                "", status_code=303, headers={**HEADERS, "Location": location}
            )
        else:
            response = error_page(request, exc.status_code, exc.message, exc.details, exc.headers)
        if exc.status_code == 401:
            clear_cookie(response, request)
        if has_body(scope):
            # The body was never read: closing the connection means it never will be.
            response.headers["Connection"] = "close"
        await response(scope, _no_receive, send)


async def _no_receive() -> dict[str, Any]:  # a refused page's body is never read
    return {"type": "http.disconnect"}


def error_page(
    request: Request,
    status_code: int,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """An error as a page, in words: what went wrong, and the fields at fault."""
    return page(
        request,
        "error.html",
        {"status_code": status_code, "message": message, "problems": forms.problems_in(details)},
        status_code=status_code,
        headers=headers,
    )


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Any, request: Request, token: str, max_age_s: int) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=max_age_s,
        path=PREFIX,
        httponly=True,
        secure=secure(request),
        samesite="strict",
    )


def clear_cookie(response: Any, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path=PREFIX, httponly=True, secure=secure(request), samesite="strict"
    )


def session_token(request: Request) -> str:
    token = request.scope.get("state", {}).get("session_token")
    if not isinstance(token, str):
        raise Unauthorized(sessions.SIGNED_OUT)
    return token


async def csrf_checked(
    request: Request, csrf_token: Annotated[str | None, Form(max_length=128)] = None
) -> None:
    """Refuse a state-changing form without its session's CSRF token (403)."""
    sent = request.headers.get("x-csrf-token") or csrf_token
    if not sessions.csrf_matches(session_token(request), sent):
        raise Forbidden("this form has expired or was not sent from the console; reload the page")


CsrfChecked = Depends(csrf_checked)


def next_path(value: str | None) -> str:
    """Where to go after signing in: only a console path, never another site."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//"):
        return value
    return PREFIX + "/"


def quoted(value: str) -> str:
    return quote(value, safe="")


Searcher = Annotated[Principal, Depends(allow_signed_in(*nav.DECISION_SEARCH))]
DecisionReader = Annotated[Principal, Depends(allow_signed_in(*nav.DECISION_READERS))]
Auditor = Annotated[Principal, Depends(allow_signed_in(*nav.AUDITORS))]
FairnessReader = Annotated[Principal, Depends(allow_signed_in(*nav.FAIRNESS))]
ModelReader = Annotated[Principal, Depends(allow_signed_in(*nav.MODELS))]
Monitor = Annotated[Principal, Depends(allow_signed_in(*nav.MONITORS))]
Rebuilder = Annotated[Principal, Depends(allow_signed_in(*nav.REBUILDERS))]
SignedIn = Annotated[Principal, Depends(allow_signed_in(*nav.ANYONE))]
Notifier = Annotated[Principal, Depends(allow_signed_in(*nav.NOTIFIERS))]
CaseReader = Annotated[Principal, Depends(allow_signed_in(*nav.CASE_READERS))]
CaseDecider = Annotated[Principal, Depends(allow_signed_in(*nav.CASE_DECIDERS))]
Assigner = Annotated[Principal, Depends(allow_signed_in(*nav.ASSIGNERS))]
ExperimentReader = Annotated[Principal, Depends(allow_signed_in(*nav.EXPERIMENTS))]
SearchReader = Annotated[Principal, Depends(allow_signed_in(*nav.SEARCHES))]
PromotionReader = Annotated[Principal, Depends(allow_signed_in(*nav.PROMOTIONS))]
PromotionValidator = Annotated[Principal, Depends(allow_signed_in(*nav.VALIDATORS))]
