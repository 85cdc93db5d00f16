"""ASGI middleware kept deliberately small: the request body's size and time limits, and no NUL
or unpaired surrogate in any text."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import error_body
from core.text import HOLDS_NUL, find_bad_text, may_hold_bad_text

_UPLOAD_PATH = re.compile(r"^/api/v1/models/[^/]+/versions/?$")
# Bodies larger than this are parsed for the text check off the event loop.
_PARSE_ON_LOOP_BYTES = 64 * 1024


class BodySizeLimit:
    """Refuses bodies above the limit with 413, whether or not Content-Length is sent, and bodies
    that take longer than the read timeout to arrive with 408 (a client trickling its body must
    not hold a connection, or a predict admission slot, for as long as it likes).

    Model uploads (``POST /api/v1/models/{name}/versions``) get their own, larger limits, but only
    for a caller the auth gate admitted to that route: an anonymous or refused caller never gets
    past the gate, and no one else gets the large limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        max_upload_bytes: int | None = None,
        read_timeout_s: float = 10.0,
        upload_read_timeout_s: float | None = None,
    ) -> None:
        self.app = app
        self.default = (max_bytes, read_timeout_s)
        self.upload = (max_upload_bytes or max_bytes, upload_read_timeout_s or read_timeout_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = (
            scope.get("method") == "POST"
            and bool(_UPLOAD_PATH.match(scope.get("path", "")))
            and scope.get("state", {}).get("principal") is not None
        )
        max_bytes, timeout_s = self.upload if upload else self.default
        await LimitedRequest(max_bytes, timeout_s)(self.app, scope, receive, send)


class LimitedRequest:
    def __init__(self, max_bytes: int, timeout_s: float = 10.0) -> None:
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, declared)
            return
        reader = _BodyReader(self.max_bytes, self.timeout_s, receive, send)
        try:
            await app(scope, reader.receive, reader.send)
        except ClientDisconnect:
            if reader.refusal is None:
                return  # the client went away before its body was in: no one to answer
        except Exception:
            if reader.refusal is None:
                raise
        if reader.started or reader.refusal is None:
            return
        if reader.refusal == "too_large":
            await self._refuse(send, reader.received)
        elif reader.refusal == "timeout":
            await send_json(
                send,
                408,
                error_body(
                    "request_timeout",
                    f"the request body did not arrive within {self.timeout_s:g} s",
                    {"timeout_s": self.timeout_s, "received_bytes": reader.received},
                ),
                {"Connection": "close"},
            )
        elif reader.bad is not None:
            await send_json(send, 422, _text_error(*reader.bad))

    def _message(self, size: int) -> str:
        return f"request body of {size} bytes exceeds the limit of {self.max_bytes} bytes"

    async def _refuse(self, send: Send, size: int) -> None:
        body = error_body("payload_too_large", self._message(size), {"limit_bytes": self.max_bytes})
        await send_json(send, 413, body, {"Connection": "close"})


class _BodyReader:
    """One request's body as the app receives it: counted, timed and checked for bad text.

    Past a limit (or on bad text) the app is told the client went away, so it stops, and nothing
    it sends is passed on: the refusal is sent instead.
    """

    def __init__(self, max_bytes: int, timeout_s: float, receive: Receive, send: Send) -> None:
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._receive = receive
        self._send = send
        self.received = 0
        self.refusal: str | None = None  # too_large, timeout or bad_text
        self.bad: tuple[str, str] | None = None  # (field, problem)
        self.started = False
        self._complete = False
        self._deadline: float | None = None
        self._suspect = False  # a chunk held a raw NUL or an escape that may decode to bad text
        self._chunks: list[bytes] = []
        self._tail = b""

    async def receive(self) -> Message:
        if self.refusal is not None:
            return {"type": "http.disconnect"}
        if self._complete:
            # The body is in; later calls wait for a disconnect (a streamed response does).
            return await self._receive()
        if self._deadline is None:
            self._deadline = time.monotonic() + self.timeout_s
        try:
            message = await asyncio.wait_for(
                self._receive(), max(0.0, self._deadline - time.monotonic())
            )
        except TimeoutError:
            self.refusal = "timeout"
            return {"type": "http.disconnect"}
        if message["type"] == "http.request":
            return await self._chunk(message)
        return message

    async def _chunk(self, message: Message) -> Message:
        self._complete = not message.get("more_body", False)
        chunk = message.get("body", b"")
        self.received += len(chunk)
        if self.received > self.max_bytes:
            self.refusal = "too_large"
            return {"type": "http.disconnect"}
        self._chunks.append(chunk)
        # The seam between chunks is checked on its few bytes, never by copying a chunk.
        self._suspect = (
            self._suspect or may_hold_bad_text(chunk) or may_hold_bad_text(self._tail + chunk[:6])
        )
        self._tail = chunk[-6:]
        if self._suspect and self._complete:
            body = b"".join(self._chunks)
            if len(body) > _PARSE_ON_LOOP_BYTES:
                self.bad = await run_in_threadpool(_bad_text_in, body)
            else:
                self.bad = _bad_text_in(body)
            if self.bad is not None:
                self.refusal = "bad_text"
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.refusal is None:
            self.started = self.started or message["type"] == "http.response.start"
            await self._send(message)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None


class RefuseNul:
    """Refuses a NUL character in the path or the query string with 422, naming the parameter.

    No text that govern stores or compares may hold NUL: PostgreSQL's text types cannot, so such
    a filter would otherwise fail inside the database instead of being refused up front. (The
    server decodes paths and query strings with replacement, so neither can hold a surrogate.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            field = _nul_field(scope)
            if field is not None:
                await send_json(send, 422, _text_error(field, HOLDS_NUL))
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
            return name.replace("\x00", "\\u0000")[:200]
    return "query"


def _bad_text_in(body: bytes) -> tuple[str, str] | None:
    """The field holding NUL or a lone surrogate in a JSON body; "body" for a raw NUL in any
    other body."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return ("body", HOLDS_NUL) if b"\x00" in body else None
    return find_bad_text(data)


def _text_error(field: str, problem: str) -> dict[str, Any]:
    return error_body(
        "invalid_input", f"invalid request: {field}", [{"field": field, "message": problem}]
    )


def has_body(scope: Scope) -> bool:
    """Whether the request announces a body (which may not have been read)."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
        if name == b"transfer-encoding":
            return True
    return False


async def send_json(
    send: Send, status: int, content: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    body = json.dumps(content).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
