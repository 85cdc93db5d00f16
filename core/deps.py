"""Shared dependencies: the session that owns the transaction, the caller, and role checks.

Every route under ``/api/v1`` declares the roles it allows with ``allow(...)``, or says it is
``public``. A test walks every route and fails on one that declares neither.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from core.auth import service as auth_service
from core.auth.models import Role
from core.auth.schemas import Principal
from core.config import Settings
from core.errors import Forbidden, Unauthorized


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: commit when the handler returns, roll back when it raises."""
    session: Session = request.app.state.sessions()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
EngineDep = Annotated[Engine, Depends(get_engine)]
# scope="function": commit before the response is sent, so nothing is answered that did not
# commit, and background work never starts before its rows exist.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer gov_...`")


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller the auth gate admitted (``core.auth.gate``), checked before any body
    was read; without the gate (an app mounted elsewhere), the key is checked here.

    Async: as a plain function FastAPI ran it on the thread pool for every request, two thread
    hand-offs to read one attribute; only the check without the gate reads the database, on a
    worker thread."""
    admitted: Principal | None = getattr(request.state, "principal", None)
    if admitted is not None:
        return admitted
    if credentials is None or not credentials.credentials:
        raise Unauthorized(KEY_REQUIRED)
    return await run_in_threadpool(
        authenticate_token, request.app.state.reads, credentials.credentials
    )


KEY_REQUIRED = "an API key is required: send 'Authorization: Bearer <key>'"


def authenticate_token(reads: sessionmaker[Session], token: str) -> Principal:
    """One autocommit read (no BEGIN or COMMIT round trips), on a connection of its own: a request
    that then waits (predict waiting for the decision log, say) must not hold a pooled connection
    the log writer needs."""
    with reads() as session:
        return auth_service.authenticate(session=session, token=token)


class RoleGuard:
    """Lets a request through only when its key has one of the allowed roles.

    ``admin`` passes every check: it is the operator's role.
    """

    def __init__(self, *roles: Role) -> None:
        self.roles = frozenset(roles) | {Role.admin}

    async def __call__(
        self, principal: Annotated[Principal, Depends(current_principal)]
    ) -> Principal:
        # async: a pure check, so it runs on the event loop, not as a thread-pool hop.
        self.check(principal)
        return principal

    def check(self, principal: Principal) -> None:
        if principal.role not in self.roles:
            allowed = sorted(r.value for r in self.roles)
            raise Forbidden(
                f"role {principal.role.value!r} may not use this route; "
                f"allowed: {', '.join(allowed)}",
                details={"role": principal.role.value, "allowed_roles": allowed},
            )

    def __repr__(self) -> str:
        return f"RoleGuard({', '.join(sorted(r.value for r in self.roles))})"


def allow(*roles: Role) -> RoleGuard:
    return RoleGuard(*roles)


class SessionGuard(RoleGuard):
    """A role guard for pages a person reads in a browser: the auth gate admits the caller by
    their console session cookie instead of a bearer key (``core.auth.gate``)."""

    def __repr__(self) -> str:
        return f"SessionGuard({', '.join(sorted(r.value for r in self.roles))})"


def allow_signed_in(*roles: Role) -> SessionGuard:
    return SessionGuard(*roles)


class PublicRoute:
    """Marks a route as open to everyone, on purpose."""

    async def __call__(self) -> None:
        return None


public = PublicRoute()

ANY_ROLE = tuple(Role)
AdminOnly = Annotated[Principal, Depends(allow())]
AnyRole = Annotated[Principal, Depends(allow(*ANY_ROLE))]


PUBLIC = "public"


def declared_roles(app: FastAPI) -> dict[str, set[str] | str | None]:
    """``"METHOD /path"`` -> the roles its guard admits besides admin, ``PUBLIC``, or None when the
    route declares neither. The role table test and the reliability drills both read this."""
    declared: dict[str, set[str] | str | None] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        guard = route_guard(route)
        for method in route.methods or []:
            key = f"{method} {context.path}"
            if isinstance(guard, RoleGuard):
                declared[key] = {r.value for r in guard.roles} - {Role.admin.value}
            else:
                declared[key] = PUBLIC if guard is not None else None
    return declared


def route_guard(route: APIRoute) -> RoleGuard | PublicRoute | None:
    """The guard a route declares among its dependencies (a role guard wins over public)."""
    stack, guards = list(route.dependant.dependencies), []
    while stack:
        dep = stack.pop()
        if isinstance(dep.call, RoleGuard | PublicRoute):
            guards.append(dep.call)
        stack.extend(dep.dependencies)
    role_guards = [g for g in guards if isinstance(g, RoleGuard)]
    if role_guards:
        return role_guards[0]
    return guards[0] if guards else None


def now_of(request: Request) -> datetime:
    """The app's clock (``app.state.clock``): what casework, experiments and promotions read as
    now; tests move it, never sleep."""
    now: datetime = request.app.state.clock()
    return now
