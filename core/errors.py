"""Error types and the handlers that give every error the same body.

Services raise ``GovernanceError`` subclasses and never ``HTTPException``. Every error body is
``{"error": {"code": str, "message": str, "details": ...}}``; under a prefix registered in
``app.state.error_pages`` (the web console) the same error is a page, in words.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("govern.errors")


class GovernanceError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code
        self.details = details
        self.headers = headers

    def __reduce__(self) -> tuple[Any, ...]:
        # Kept whole across processes (an explanation worker raises, the server answers): the
        # class, the message, and every attribute, whatever a subclass's __init__ takes.
        return (_rebuilt, (type(self), self.message), dict(self.__dict__))


def _rebuilt(cls: type[GovernanceError], message: str) -> GovernanceError:
    error = Exception.__new__(cls)
    Exception.__init__(error, message)
    return error


class InvalidInput(GovernanceError):
    status_code = 422
    code = "invalid_input"

    @classmethod
    def at(cls, field: str, message: str, summary: str | None = None) -> InvalidInput:
        """One problem with one named field (a query parameter, a body field)."""
        return cls(summary or f"{field}: {message}", details=[{"field": field, "message": message}])


class Unauthorized(GovernanceError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class Forbidden(GovernanceError):
    status_code = 403
    code = "forbidden"


class NotFound(GovernanceError):
    status_code = 404
    code = "not_found"


class Conflict(GovernanceError):
    status_code = 409
    code = "conflict"


class ServiceUnavailable(GovernanceError):
    status_code = 503
    code = "service_unavailable"


class TooManyRequests(GovernanceError):
    """One key is over its share (a rate or concurrency cap); ``Retry-After`` says when to."""

    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: int = 1, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(max(1, retry_after_s))})
        super().__init__(message, **kwargs)


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    408: "request_timeout",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    503: "service_unavailable",
}


ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable, machine-readable"},
                "message": {"type": "string", "description": "for people"},
                "details": {"description": "the fields and problems, or other context"},
            },
        }
    },
}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI document say what errors really look like.

    FastAPI documents a 422 body that govern never sends (its ``HTTPValidationError``). Every error
    here has the body above, and any route can answer 4xx (401 without a key, 403 for a refused
    role, 413 for an oversized body, ...) or 503 (database unavailable), so each operation gets a
    ``4XX`` and a ``503`` response with that body, and the 422 points at it too.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Error"] = ERROR_SCHEMA
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, text in (
                ("422", "Invalid input: the fields and their problems"),
                ("4XX", "Refused: the error says why"),
                ("503", "Unavailable (the database, or overload); retry"),
            ):
                responses[code] = {"description": text, "content": body}
    return schema


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(code, message, details), status_code=status_code, headers=headers
    )


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:] or parts
    return ".".join(parts)


MAX_FIELD_CHARS = 200
MAX_LISTED_FIELDS = 10


def field_list(fields: list[str], empty: str = "body") -> str:
    """Field names for a message: at most ten, each bounded (a caller chooses key names)."""
    shown = [f or empty for f in fields[:MAX_LISTED_FIELDS]]
    more = len(fields) - MAX_LISTED_FIELDS
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _bounded(name: str) -> str:
    return name if len(name) <= MAX_FIELD_CHARS else name[:MAX_FIELD_CHARS] + "…"


def validation_details(errors: Any) -> list[dict[str, Any]]:
    details = []
    for err in errors:
        loc = err.get("loc", ())
        entry = {
            "field": _bounded(_field_path(loc)),
            "in": str(loc[0]) if loc else "body",
            "message": str(err.get("msg", "invalid")).removeprefix("Value error, "),
            "type": err.get("type", "invalid"),
        }
        details.append(entry)
    return details


ErrorPage = Callable[[Request, int, str, Any, "dict[str, str] | None"], Response]


def _answer(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The error as JSON, or as a page where the app renders errors for people
    (``app.state.error_pages``: path prefix -> renderer, as the web console sets it)."""
    pages: dict[str, ErrorPage] = getattr(request.app.state, "error_pages", {})
    for prefix, render in pages.items():
        if request.url.path.startswith(prefix):
            return render(request, status, message, details, headers)
    return error_response(status, code, message, details, headers)


async def _governance_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GovernanceError)
    return _answer(request, exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = validation_details(exc.errors())
    if any(d["type"] == "json_invalid" for d in details):
        message = "the request body is not valid JSON"
    else:
        fields = field_list(sorted({d["field"] for d in details}))
        message = f"invalid request: {fields}"
    return _answer(request, 422, "invalid_input", message, details)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = "no such route"
    return _answer(
        request, exc.status_code, code, message, None, dict(exc.headers) if exc.headers else None
    )


async def _database_error(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable: %s", exc)
    return _answer(
        request,
        503,
        "database_unavailable",
        "the database is unavailable; retry later",
        None,
        {"Retry-After": "1"},
    )


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return _answer(request, 500, "internal_error", "internal error; it has been logged")


def is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GovernanceError, _governance_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(PoolTimeoutError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)
