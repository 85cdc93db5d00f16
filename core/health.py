"""Liveness and readiness. Both are public so that orchestrators can probe without a key."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy.engine import Engine

from core import __version__
from core.deps import EngineDep, public
from core.errors import error_response, is_connection_error
from core.migrate import schema_state
from core.responses import Body

router = APIRouter(tags=["health"], dependencies=[Depends(public)])


class Liveness(Body):
    status: Literal["ok"]
    version: str


class Readiness(Body):
    status: Literal["ready"]
    database: Literal["ok"]
    revision: list[str] = Field(description="The migration revision(s) the database is at")


@router.get("/healthz", response_model=Liveness, summary="The process is alive")
def healthz() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


def readiness(engine: Engine) -> tuple[bool, dict[str, Any]]:
    try:
        state = schema_state(engine)
    except Exception as exc:
        if not is_connection_error(exc):
            raise
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return False, {"database": "unreachable", "reason": reason}
    if not state.at_head:
        return False, {
            "database": "behind",
            "reason": state.describe(),
            "current": sorted(state.current),
            "head": sorted(state.heads),
        }
    return True, {"database": "ok", "revision": sorted(state.current)}


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="The database is reachable and at the migration head",
)
def readyz(engine: EngineDep) -> JSONResponse:
    ready, detail = readiness(engine)
    if ready:
        return JSONResponse({"status": "ready", **detail})
    return error_response(503, "not_ready", f"not ready: {detail['reason']}", detail)
