"""Issue 16: no work before authentication, no body without a deadline, no key that can hold
every predict slot.

These call the ASGI app directly, with a ``receive`` that records whether the body was asked
for: the only way to prove a body was never read.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from core.auth import sessions
from core.auth.models import Role
from core.config import Settings
from core.db import transaction
from core.deps import PUBLIC, declared_roles
from governance.app import create_app
from tests.conftest import KeyMaker, Served
from tests.governance.test_roles import PATH_VALUES
from tests.support.factories import applicant


@dataclass
class Exchange:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    reads: int = 0


async def call(
    app: FastAPI,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    chunks: list[bytes] | None = None,
    hang_after: int | None = None,
    declared_length: int | None = None,
    disconnect_after: int | None = None,
) -> Exchange:
    """One request through the whole middleware stack; ``hang_after`` chunks, the client stops
    sending (a trickled body) and the next read waits forever; ``disconnect_after`` chunks, the
    client goes away."""
    chunks = list(chunks or [])
    sent = Exchange()
    length = declared_length if declared_length is not None else sum(len(c) for c in chunks)
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    raw_headers.append((b"content-length", str(length).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        "headers": raw_headers,
        "app": app,
    }
    position = 0

    async def receive() -> dict[str, Any]:
        nonlocal position
        sent.reads += 1
        if disconnect_after is not None and position >= disconnect_after:
            return {"type": "http.disconnect"}
        if hang_after is not None and position >= hang_after:
            await asyncio.Event().wait()
        if position < len(chunks):
            position += 1
            return {
                "type": "http.request",
                "body": chunks[position - 1],
                "more_body": position < len(chunks)
                or hang_after is not None
                or disconnect_after is not None,
            }
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.status = message["status"]
            sent.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            sent.body += message.get("body", b"")

    await app(scope, receive, send)
    return sent


def _fill(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], template)


def test_no_route_reads_a_body_before_the_key_and_role_are_checked(
    app: FastAPI, client: TestClient, make_key: KeyMaker
) -> None:
    """A 200 MB upload, a YAML spec, any body: without a key (or with a role the route refuses)
    the answer comes from the headers alone, the body is never read, and the connection closes."""
    key = make_key(Role.predictor)
    with transaction(app.state.sessions) as session:
        token, _ = sessions.sign_in(session, key, max_age_s=3600)
    bearer = {"Authorization": f"Bearer {key}"}
    # A console page is admitted by its session cookie, and refused by role the same way.
    cookie = {"Cookie": f"govern_session={token}"}
    checked = 0
    for line, roles in declared_roles(app).items():
        method, template = line.split(" ", 1)
        if roles == PUBLIC or method not in {"POST", "PUT"}:
            continue
        path = _fill(template)
        anonymous = client.portal.call(
            partial(call, app, method, path, chunks=[b"{" * 1000], declared_length=200 * 2**20)
        )
        assert anonymous.status == 401, (line, anonymous.body)
        assert anonymous.reads == 0, line
        assert anonymous.headers.get("connection") == "close"
        assert isinstance(roles, set)
        if Role.predictor.value not in roles:
            predictor = cookie if path.startswith("/console") else bearer
            refused = client.portal.call(
                partial(call, app, method, path, headers=predictor, chunks=[b"{}"])
            )
            assert refused.status == 403, (line, refused.body)
            assert refused.reads == 0, line
        checked += 1
    assert checked >= 15


BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
)


def test_yaml_anchors_and_aliases_are_refused(client: TestClient, auth) -> None:
    response = client.post(
        "/api/v1/runs",
        content=BILLION_LAUGHS,
        headers={**auth(Role.data_scientist), "Content-Type": "application/yaml"},
    )
    assert response.status_code == 422
    assert "anchors and aliases are not allowed" in response.json()["error"]["message"]
    small = "base: &b {x: 1}\nmodel: *b\n"
    response = client.post(
        "/api/v1/runs",
        content=small,
        headers={**auth(Role.data_scientist), "Content-Type": "application/yaml"},
    )
    assert response.status_code == 422
    assert "line 1" in response.json()["error"]["message"]


def test_the_upload_limit_is_only_for_roles_that_may_upload(
    client: TestClient, auth, settings: Settings
) -> None:
    big = b'{"pad": "' + b"x" * (settings.max_body_bytes + 10) + b'"}'
    data_scientist = {**auth(Role.data_scientist), "Content-Type": "application/json"}
    upload = client.post("/api/v1/models/m/versions", content=big, headers=data_scientist)
    assert upload.status_code == 422  # read and parsed: the large limit applies
    refused = client.post(
        "/api/v1/models/m/versions",
        content=big,
        headers={**auth(Role.compliance), "Content-Type": "application/json"},
    )
    assert refused.status_code == 403
    elsewhere = client.put("/api/v1/endpoints/e", content=big, headers=data_scientist)
    assert elsewhere.status_code == 413


@pytest.fixture
def strict_app(settings: Settings) -> FastAPI:
    return create_app(
        settings.model_copy(
            update={
                "body_read_timeout_s": 0.3,
                "predict_max_inflight": 6,
                "predict_max_inflight_per_key": 2,
            }
        )
    )


def test_a_trickled_body_times_out_with_408(strict_app: FastAPI, make_key: KeyMaker) -> None:
    headers = {"Authorization": f"Bearer {make_key(Role.predictor)}"}
    with TestClient(strict_app) as client:
        slow = client.portal.call(
            lambda: call(
                strict_app,
                "POST",
                "/api/v1/endpoints/credit/predict",
                headers=headers,
                chunks=[b'{"features": {'],
                hang_after=1,
                declared_length=4000,
            )
        )
    assert slow.status == 408
    assert slow.headers.get("connection") == "close"
    assert b"did not arrive within 0.3 s" in slow.body


def test_a_client_gone_before_its_body_is_in_is_no_server_error(
    strict_app: FastAPI, make_key: KeyMaker, served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the attack drill: each trickler that hung up logged "unhandled error" with a
    traceback twice, and the predict metric counted the call as answered 200."""
    headers = {"Authorization": f"Bearer {make_key(Role.predictor)}"}
    before = {status: _predict_count(status) for status in ("200", "499")}
    with TestClient(strict_app) as client:
        gone = client.portal.call(
            lambda: call(
                strict_app,
                "POST",
                "/api/v1/endpoints/credit/predict",
                headers=headers,
                chunks=[b'{"features": {'],
                disconnect_after=1,
                declared_length=4000,
            )
        )
    assert gone.status == 0  # nothing sent: there is no one to send it to
    assert _predict_count("499") == before["499"] + 1
    assert _predict_count("200") == before["200"]
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def _predict_count(status: str) -> float:
    """Predict calls counted with ``status``, over every endpoint label."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "govern_predict_requests"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("status") == status
    )


def test_one_key_cannot_hold_every_predict_slot(
    strict_app: FastAPI, make_key: KeyMaker, served: Served
) -> None:
    """Two trickled bodies from one key hold its two slots; its third call gets 429, and
    another key is still answered."""
    attacker = {"Authorization": f"Bearer {make_key(Role.predictor)}"}
    honest = {
        "Authorization": f"Bearer {make_key(Role.predictor)}",
        "Content-Type": "application/json",
    }

    async def scenario() -> tuple[list[Exchange], Exchange]:
        path = "/api/v1/endpoints/credit/predict"
        trickles = [
            asyncio.create_task(
                call(
                    strict_app,
                    "POST",
                    path,
                    headers=attacker,
                    chunks=[b"{"],
                    hang_after=1,
                    declared_length=100,
                )
            )
            for _ in range(2)
        ]
        await asyncio.sleep(0.1)
        third = await call(strict_app, "POST", path, headers=attacker, chunks=[b"{}"])
        import json

        body = json.dumps({"features": applicant()}).encode()
        answered = await call(strict_app, "POST", path, headers=honest, chunks=[body])
        return [third, *await asyncio.gather(*trickles)], answered

    with TestClient(strict_app) as client:
        attacker_calls, answered = client.portal.call(scenario)
    third, *trickled = attacker_calls
    assert third.status == 429
    assert third.headers.get("retry-after") == "1"
    assert answered.status == 200, answered.body
    assert [t.status for t in trickled] == [408, 408]


def test_a_burst_from_one_key_or_forged_keys_never_takes_the_others_slots(
    strict_app: FastAPI, make_key: KeyMaker, served: Served
) -> None:
    """Found by the attack drill: slots were counted before the key was checked, so a burst
    filled all of them while the keys were being looked up, and everyone got 503."""
    burst = {"Authorization": f"Bearer {make_key(Role.predictor)}"}
    forged = {"Authorization": "Bearer gov_0123456789ab_" + "A" * 43}
    honest = {
        "Authorization": f"Bearer {make_key(Role.predictor)}",
        "Content-Type": "application/json",
    }
    path = "/api/v1/endpoints/credit/predict"

    async def scenario() -> tuple[list[Exchange], list[Exchange], Exchange]:
        def trickle(headers: dict[str, str]) -> Any:
            return call(
                strict_app,
                "POST",
                path,
                headers=headers,
                chunks=[b"{"],
                hang_after=1,
                declared_length=100,
            )

        held = [asyncio.create_task(trickle(burst)) for _ in range(12)]
        refused = await asyncio.gather(*(trickle(forged) for _ in range(12)))
        await asyncio.sleep(0.1)
        import json

        body = json.dumps({"features": applicant()}).encode()
        answered = await call(strict_app, "POST", path, headers=honest, chunks=[body])
        return list(await asyncio.gather(*held)), list(refused), answered

    with TestClient(strict_app) as client:
        from_burst, from_forged, answered = client.portal.call(scenario)
    statuses = sorted(e.status for e in from_burst)
    assert statuses == [408] * 2 + [429] * 10, statuses
    assert {e.status for e in from_forged} == {401}
    assert answered.status == 200, answered.body
