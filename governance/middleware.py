"""ASGI middleware kept deliberately small: the request body limit."""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from governance.errors import error_body

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
        started = False

        async def limited_receive() -> Message:
            # Past the limit the app is told the client went away, so it stops reading.
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if not too_large:
                started = started or message["type"] == "http.response.start"
                await send(message)

        try:
            await app(scope, limited_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await self._refuse(send, received)

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
