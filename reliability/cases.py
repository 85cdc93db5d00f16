"""One hostile request, what it must get back, and sending it: through httpx, or over a bare
socket when the request is one no well-behaved client sends (headers first, the body only if the
server waits for it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from reliability import rawhttp

# A check on a whole response: the problem it finds, or "" when there is none.
Check = Callable[[int, str], str]


@dataclass
class Case:
    category: str
    name: str
    method: str
    path: str
    role: str | None = "admin"  # None: no key at all
    token: str | None = None  # overrides the role's key
    cookie: str | None = None  # a console session's cookie, sent instead of any key
    json_body: Any = None
    content: bytes | None = None
    content_type: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    expect: frozenset[int] = frozenset({400, 413, 422})
    # Sent over a bare socket: headers (and ``content`` when ``declared_length`` is set) first;
    # the answer must come before the rest of the body is sent.
    raw: bool = False
    declared_length: int | None = None  # announced instead of len(content)
    mentions: tuple[str, ...] = ()  # each must be in the answer
    never_mentions: tuple[str, ...] = ()  # none may be in the answer
    check: Check | None = None
    status: int | None = None
    answer: str = ""
    problem: str = ""  # what a check found wrong with an answer of the expected status
    rejection_id: str | None = None  # a refused predict's id in the log, when the answer gave one

    @property
    def passed(self) -> bool:
        return self.status is not None and self.status in self.expect and not self.problem

    def summary(self) -> dict[str, Any]:
        """The case as details.json keeps it: no bodies, no callables."""
        skipped = {"content", "json_body", "check", "cookie"}
        kept = {k: v for k, v in self.__dict__.items() if k not in skipped}
        return kept | {"expect": sorted(self.expect), "passed": self.passed}


def _chunked() -> Iterator[bytes]:
    yield b'{"features": {"x": "'
    for _ in range(20):
        yield b"z" * 1_000_000
    yield b'"}}'


def _headers(case: Case, keys: dict[str, str]) -> tuple[dict[str, str], bytes | None]:
    headers: dict[str, str] = {}
    token = case.token or (keys[case.role] if case.role else None)
    if case.cookie:
        headers["Cookie"] = case.cookie
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    content = case.content
    if case.json_body is not None:
        content = json.dumps(case.json_body).encode()
        headers["Content-Type"] = "application/json"
    elif content is not None:
        headers["Content-Type"] = case.content_type or "application/json"
    return headers, content


def send(client: httpx.Client, case: Case, keys: dict[str, str]) -> None:
    headers, content = _headers(case, keys)
    if case.raw:
        _send_raw(client, case, headers, content or b"")
        return
    try:
        response = client.request(
            case.method,
            case.path,
            # CHUNKED: a body of unknown length, streamed without Content-Length
            content=_chunked() if content == b"CHUNKED" else content,
            headers=headers,
            params=case.params,
            timeout=60,
        )
    except httpx.HTTPError as exc:
        case.answer = f"no answer: {type(exc).__name__}"
        return
    case.status = response.status_code
    _judge(case, response.text)
    try:
        data = response.json()
        error = data.get("error") or {}
        case.answer = str(error.get("message", ""))[:140]
    except (ValueError, AttributeError):
        case.answer = response.text[:140]
        return
    details = error.get("details") if isinstance(error, dict) else None
    if isinstance(details, dict) and details.get("rejection_id"):
        case.rejection_id = str(details["rejection_id"])
    if case.category == "SQL metacharacters" and case.status == 200 and data.get("count"):
        # A probe is a literal value: it may match nothing, never everything.
        case.answer = f"returned {data['count']} rows for a literal probe"
        case.status = -200


def _send_raw(client: httpx.Client, case: Case, headers: dict[str, str], content: bytes) -> None:
    port = client.base_url.port
    assert port is not None
    path = case.path + ("?" + str(httpx.QueryParams(case.params)) if case.params else "")
    answer = asyncio.run(
        rawhttp.ask_before_body(
            port,
            case.method,
            path,
            headers,
            content,
            declared=case.declared_length,
            prefix=content if case.declared_length is not None else b"",
        )
    )
    case.status = answer.status
    text = answer.body.decode("utf-8", "replace")
    if answer.status is None:
        case.answer = f"no answer: {answer.error}"
        return
    try:
        case.answer = str(json.loads(text)["error"]["message"])[:140]
    except (ValueError, KeyError, TypeError):
        case.answer = text[:140]
    _judge(case, text)
    if not answer.before_body and not case.problem:
        case.problem = "answered only after the whole body was sent: the server read it first"


def _judge(case: Case, text: str) -> None:
    missing = [m for m in case.mentions if m not in text]
    leaked = [m for m in case.never_mentions if m in text]
    problems = []
    if missing:
        problems.append(f"the answer does not mention {missing}")
    if leaked:
        problems.append("the answer shows what it must not: " + ", ".join(s[:40] for s in leaked))
    if case.check is not None and case.status is not None:
        found = case.check(case.status, text)
        if found:
            problems.append(found)
    case.problem = "; ".join(problems)
