"""Load shedding for predict: refuse early and cheaply rather than queue without bound.

A predict call that arrives while ``predict_max_inflight`` calls are already in progress in
this process is answered 503 with ``Retry-After`` at once, before its body is read and with no
decision made, so nothing is logged and nothing is lost. Without this, an open-loop overload
piles requests up until every one of them times out; with it, the calls admitted keep their
latency and the rest learn immediately to retry.

Slots are counted only for callers the auth gate admitted, and only after the caller's own key
was within its share (``KeyAdmission``, 429): counted before the key check, a burst of forged
keys or of one key's calls filled every slot while the keys were being looked up, and honest
callers got 503 (found by the attack drill).
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Receive, Scope, Send

from core.errors import error_body
from core.middleware import send_json
from serving import metrics

PREDICT_PATH = re.compile(r"^/(api/v1/endpoints/[^/]+/predict|v2/models/[^/]+/infer)/?$")


class PredictAdmission:
    def __init__(self, app: ASGIApp, max_inflight: int, retry_after_s: int = 1) -> None:
        self.app = app
        self.max_inflight = max_inflight
        self.retry_after_s = retry_after_s
        self.inflight = 0
        self.body = json.dumps(
            error_body(
                "overloaded",
                f"more than {max_inflight} predict calls are in progress; retry shortly",
                {"max_inflight": max_inflight, "retry_after_s": retry_after_s},
            )
        ).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not PREDICT_PATH.match(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.max_inflight:
            metrics.PREDICT_SHED.inc()
            await self._refuse(send)
            return
        # One event loop per process: the counter needs no lock.
        self.inflight += 1
        metrics.PREDICT_INFLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
            metrics.PREDICT_INFLIGHT.dec()

    async def _refuse(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self.body)).encode()),
                    (b"retry-after", str(self.retry_after_s).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self.body})


class KeyAdmission:
    """No one key may hold more than ``max_per_key`` of a process's predict slots.

    Runs after the auth gate, which has named the key. A key over its share gets 429 with
    ``Retry-After``: it is that caller's own load, not the server's, so other keys keep the
    remaining slots (a key trickling its bodies cannot take every slot and starve the rest).
    """

    def __init__(self, app: ASGIApp, max_per_key: int, retry_after_s: int = 1) -> None:
        self.app = app
        self.max_per_key = max_per_key
        self.retry_after_s = retry_after_s
        self.inflight: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope.get("state", {}).get("principal")
        if (
            principal is None
            or scope["type"] != "http"
            or scope.get("method") != "POST"
            or not PREDICT_PATH.match(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return
        key = principal.key_id
        held = self.inflight.get(key, 0)
        if held >= self.max_per_key:
            metrics.PREDICT_SHED_PER_KEY.inc()
            await send_json(
                send,
                429,
                error_body(
                    "too_many_requests",
                    f"this key already has {held} predict calls in progress, its most in one "
                    "process; retry shortly",
                    {"max_per_key": self.max_per_key, "retry_after_s": self.retry_after_s},
                ),
                {"Retry-After": str(self.retry_after_s)},
            )
            return
        self.inflight[key] = held + 1  # one event loop per process: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            left = self.inflight[key] - 1
            if left:
                self.inflight[key] = left
            else:
                del self.inflight[key]
