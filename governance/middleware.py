"""ASGI middleware kept deliberately small: the request body limit, and no NUL in any text."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from governance.errors import error_body
from governance.text import find_nul, may_hold_nul

_UPLOAD_PATH = re.compile(r"^/api/v1/models/[^/]+/versions/?$")


class BodySizeLimit:
    """Refuses bodies above the limit with 413, whether or not Content-Length is sent.

    Model uploads (``POST /api/v1/models/{name}/versions``) get their own, larger limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_bytes: int | None = None) -> None:
        self.app = app
        self.default_bytes = max_bytes
        self.upload_bytes = max_upload_bytes or max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope.get("method") == "POST" and bool(_UPLOAD_PATH.match(scope.get("path", "")))
        limit = LimitedRequest(self.upload_bytes if upload else self.default_bytes)
        await limit(self.app, scope, receive, send)


class LimitedRequest:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    async def __call__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._refuse(send, declared)
                    return
                break

        received = 0
        too_large = False
        suspect = False  # a chunk held a raw NUL or a \u0000 escape
        nul: str | None = None  # the field holding NUL, once the whole body is in
        chunks: list[bytes] = []
        tail = b""
        started = False

        async def limited_receive() -> Message:
            # Past the limit (or on NUL) the app is told the client went away, so it stops.
            nonlocal received, too_large, suspect, nul, tail
            if too_large or nul is not None:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > self.max_bytes:
                    too_large = True
                    return {"type": "http.disconnect"}
                chunks.append(chunk)
                # The seam between chunks is checked on its few bytes, never by copying a chunk.
                suspect = suspect or may_hold_nul(chunk) or may_hold_nul(tail + chunk[:5])
                tail = chunk[-5:]
                if suspect and not message.get("more_body", False):
                    nul = _nul_in(b"".join(chunks))
                    if nul is not None:
                        return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if not too_large and nul is None:
                started = started or message["type"] == "http.response.start"
                await send(message)

        try:
            await app(scope, limited_receive, guarded_send)
        except Exception:
            if not too_large and nul is None:
                raise
        if too_large and not started:
            await self._refuse(send, received)
        elif nul is not None and not started:
            await _send_json(send, 422, _nul_error(nul))

    def _message(self, size: int) -> str:
        return f"request body of {size} bytes exceeds the limit of {self.max_bytes} bytes"

    async def _refuse(self, send: Send, size: int) -> None:
        body = json.dumps(
            error_body("payload_too_large", self._message(size), {"limit_bytes": self.max_bytes})
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class RefuseNul:
    """Refuses a NUL character in the path or the query string with 422, naming the parameter.

    No text that govern stores or compares may hold NUL: PostgreSQL's text types cannot, so such
    a filter would otherwise fail inside the database instead of being refused up front.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            field = _nul_field(scope)
            if field is not None:
                await _send_json(send, 422, _nul_error(field))
                return
        await self.app(scope, receive, send)


def _nul_field(scope: Scope) -> str | None:
    if "\x00" in scope.get("path", ""):
        return "path"
    query: bytes = scope.get("query_string", b"")
    if b"%00" not in query.lower() and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "\\u0000")
    return "query"


def _nul_in(body: bytes) -> str | None:
    """The field holding NUL in a JSON body; "body" for a raw NUL in any other body."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return "body" if b"\x00" in body else None
    return find_nul(data)


def _nul_error(field: str) -> dict[str, Any]:
    return error_body(
        "invalid_input",
        f"invalid request: {field}",
        [{"field": field, "message": "must not contain a NUL (\\u0000) character"}],
    )


async def _send_json(send: Send, status: int, content: dict[str, Any]) -> None:
    body = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
