"""Authentication and authorization from the headers alone, before any body is read.

FastAPI reads and parses a route's body before it resolves the route's dependencies, so a role
guard declared as a dependency runs only after an anonymous caller's body has been received and
parsed. The gate closes that gap for every route at once: it finds the route a request is for,
checks the key and the route's roles, and only then lets the request (and its body) in. A refused
request's body is never read, and its connection is closed so that the rest of it is not either.
The admitted principal is handed to the route's own guard, which does not check the key again.

Console pages (a ``SessionGuard``) are admitted by their session cookie instead, through the
``CookieSessions`` the app gives the gate; that also answers their refusals, as pages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from core.auth.cache import KeyCache
from core.auth.schemas import Principal
from core.deps import KEY_REQUIRED, PublicRoute, RoleGuard, SessionGuard, route_guard
from core.errors import (
    GovernanceError,
    ServiceUnavailable,
    Unauthorized,
    error_body,
    is_connection_error,
)
from core.middleware import has_body, send_json


class CookieSessions(Protocol):
    """Sessions kept by a cookie: who holds one, and how a refused page is answered."""

    cookie: str

    async def principal(self, token: str) -> Principal: ...

    async def refuse(self, scope: Scope, send: Send, exc: GovernanceError) -> None: ...


SIGN_IN_FIRST = "sign in first"


class AuthGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Callable[[], Sequence[BaseRoute]],
        keys: KeyCache,
        sessions: CookieSessions | None = None,
    ) -> None:
        self.app = app
        self._routes = routes
        self._keys = keys
        self._sessions = sessions
        self._table: list[tuple[re.Pattern[str], set[str], RoleGuard | PublicRoute | None]] = []

    def guard_for(self, scope: Scope) -> RoleGuard | PublicRoute | None:
        """The guard of the route the router will pick: the first whose path and method match,
        in the order the routes were included, as the router matches them."""
        if not self._table:  # every route is included once the first request arrives
            self._table = [
                (context.path_regex, set(context.methods or ()), route_guard(route))
                for context in iter_route_contexts(self._routes())
                if isinstance(route := context.original_route, APIRoute)
            ]
        path, method = scope.get("path", ""), scope.get("method", "")
        for pattern, methods, guard in self._table:
            if method in methods and pattern.match(path):
                return guard
        return None  # no such route (or method): the router answers 404/405 without the body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        guard = self.guard_for(scope)
        if isinstance(guard, SessionGuard) and self._sessions is not None:
            await self._page(scope, receive, send, guard, self._sessions)
            return
        if not isinstance(guard, RoleGuard):
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._admit(scope, guard)
        except GovernanceError as exc:
            await _refuse(
                scope, send, exc.status_code, exc.code, exc.message, exc.details, exc.headers
            )
            return
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            await _refuse(
                scope,
                send,
                503,
                "database_unavailable",
                "the database is unavailable; retry later",
                None,
                {"Retry-After": "1"},
            )
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _page(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        guard: SessionGuard,
        sessions: CookieSessions,
    ) -> None:
        token = cookie(scope, sessions.cookie)
        try:
            if token is None:
                raise Unauthorized(SIGN_IN_FIRST)
            principal = await sessions.principal(token)
            guard.check(principal)
        except GovernanceError as exc:
            await sessions.refuse(scope, send, exc)
            return
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            await sessions.refuse(
                scope, send, ServiceUnavailable("the database is unavailable; retry later")
            )
            return
        state = scope.setdefault("state", {})
        state["principal"] = principal
        state["session_token"] = token
        await self.app(scope, receive, send)

    async def _admit(self, scope: Scope, guard: RoleGuard) -> Principal:
        token = bearer_token(scope)
        if token is None:
            raise Unauthorized(KEY_REQUIRED)
        principal = await self._keys.principal(token)
        guard.check(principal)
        return principal


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def cookie(scope: Scope, name: str) -> str | None:
    """One cookie's value from the request's Cookie headers, or None."""
    for header, value in scope.get("headers", []):
        if header != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            key, _, found = part.strip().partition("=")
            if key == name and found:
                return str(found)
    return None


async def _refuse(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    message: str,
    details: Any,
    headers: dict[str, str] | None,
) -> None:
    extra = dict(headers or {})
    if has_body(scope):
        # The body was never read: closing the connection means it never will be.
        extra["Connection"] = "close"
    await send_json(send, status, error_body(code, message, details), extra)
