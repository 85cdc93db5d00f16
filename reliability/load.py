"""Open-loop predict load, and reconciling what the client saw with what the log holds."""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa


@dataclass
class Sent:
    """One request as the client saw it. ``subjects`` names every decision it asked for."""

    subjects: list[str]
    endpoint: str
    at: float  # seconds since the load began
    done: float | None = None  # when the answer (or the failure) came
    status: int | None = None  # None: no response (connection refused, reset, timeout)
    error: str | None = None
    code: str | None = None  # the error code of a non-200 answer (overloaded, ...)
    decisions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Fault:
    at: float  # seconds after the load began
    name: str
    action: Callable[[], Awaitable[None]]


def body(subjects: list[str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    if len(subjects) == 1:
        return {"subject_id": subjects[0], "features": rows[0], "context": {"sex": "F", "age": 41}}
    return {
        "instances": [
            {"subject_id": s, "features": r, "context": {"sex": "M", "age": 35}}
            for s, r in zip(subjects, rows, strict=True)
        ]
    }


async def drive(
    base: str,
    key: str,
    plan: list[tuple[str, list[str]]],
    applicants: list[dict[str, Any]],
    rate: float,
    faults: list[Fault] | None = None,
    timeout: float = 20.0,
) -> list[Sent]:
    """Send ``plan`` (endpoint, subject ids) at ``rate`` requests/s, open loop, firing each fault
    at its time. Every request's fate is kept, answered or not."""
    sent: list[Sent] = []
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    headers = {"Authorization": f"Bearer {key}"}
    started = time.monotonic()

    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:

        async def fire(fault: Fault) -> None:
            await asyncio.sleep(max(0.0, fault.at - (time.monotonic() - started)))
            await fault.action()

        fault_tasks = [asyncio.create_task(fire(f)) for f in faults or []]
        tasks = []
        for i, (endpoint, subjects) in enumerate(plan):
            delay = i / rate - (time.monotonic() - started)
            if delay > 0:
                await asyncio.sleep(delay)
            item = Sent(subjects=subjects, endpoint=endpoint, at=time.monotonic() - started)
            sent.append(item)
            tasks.append(asyncio.create_task(_send(client, item, applicants, timeout, started)))
        await asyncio.gather(*tasks)
        await asyncio.gather(*fault_tasks)
    return sent


def decide(
    base: str, key: str, applicants: list[dict[str, Any]], prefix: str, n: int, rate: float
) -> list[Sent]:
    """``n`` single decisions on endpoint ``credit``, subjects ``prefix0`` … , at ``rate``/s."""
    plan = [("credit", [f"{prefix}{i}"]) for i in range(n)]
    return asyncio.run(drive(base, key, plan, applicants, rate))


async def drive_closed(
    base: str,
    key: str,
    plan: list[tuple[str, list[str]]],
    applicants: list[dict[str, Any]],
    concurrency: int,
    timeout: float = 60.0,
    progress: list[Sent] | None = None,
) -> list[Sent]:
    """Send ``plan`` as fast as ``concurrency`` clients can, each waiting for its answer.
    ``progress``, when given, is filled as requests go out."""
    queue = list(reversed(plan))
    sent: list[Sent] = progress if progress is not None else []
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers) as client:

        async def worker() -> None:
            while queue:
                endpoint, subjects = queue.pop()
                item = Sent(subjects=subjects, endpoint=endpoint, at=time.monotonic() - started)
                sent.append(item)
                await _send(client, item, applicants, timeout, started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent


async def _send(
    client: httpx.AsyncClient,
    item: Sent,
    applicants: list[dict[str, Any]],
    timeout: float,
    started: float,
) -> None:
    """One predict call; its answer, or its failure, and when it came, go into ``item``."""
    rows = [applicants[zlib.crc32(s.encode()) % len(applicants)] for s in item.subjects]
    try:
        response = await client.post(
            f"/api/v1/endpoints/{item.endpoint}/predict",
            json=body(item.subjects, rows),
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        item.error = type(exc).__name__
        return
    finally:
        item.done = time.monotonic() - started
    item.status = response.status_code
    _read(item, response)


def _read(item: Sent, response: httpx.Response) -> None:
    try:
        data = response.json()
    except ValueError:
        return
    if response.status_code == 200:
        item.decisions = data.get("decisions", [data])
    elif isinstance(data, dict):
        item.code = str((data.get("error") or {}).get("code"))


def logged(url: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Live decisions whose subject id starts with ``prefix``: subject -> what the log holds."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT subject_id, decision_id, label, score, endpoint, route, payload "
                    "FROM decision WHERE kind = 'decision' AND parent_decision_id IS NULL "
                    "AND subject_id LIKE :prefix"
                ),
                {"prefix": f"{prefix}%"},
            ).all()
    finally:
        engine.dispose()
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        content = json.loads(row.payload) if row.payload else {}
        out[row.subject_id] = {
            "decision_id": row.decision_id,
            "label": content.get("label"),
            "score": content.get("score"),
            "endpoint": row.endpoint,
            "route": row.route,
        }
    return out


def reconcile(sent: list[Sent], log: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the client was told against what the log holds.

    lost: a decision answered with 200 that is not in the log, or differs from it;
    unseen: a logged decision whose request got no 200 (it died in flight after the commit).
    """
    answered: dict[str, dict[str, Any]] = {}
    for item in sent:
        if item.status == 200:
            for subject, decision in zip(item.subjects, item.decisions, strict=True):
                answered[subject] = decision
    lost, differs = [], []
    for subject, decision in answered.items():
        found = log.get(subject)
        if found is None or found["decision_id"] != decision["decision_id"]:
            lost.append(subject)
        elif found["label"] != decision["label"] or found["score"] != decision["score"]:
            differs.append(subject)
    failures = Counter(
        f"{item.status} {item.code}" if item.status is not None else (item.error or "no response")
        for item in sent
        if item.status != 200
    )
    return {
        "requests": len(sent),
        "ok_200": sum(1 for item in sent if item.status == 200),
        "decisions_answered": len(answered),
        "decisions_logged": len(log),
        "lost": len(lost) + len(differs),
        "lost_examples": (lost + differs)[:5],
        "unseen_logged": len(set(log) - set(answered)),
        "failures": dict(failures),
    }
