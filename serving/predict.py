"""The predict path, one for every transport: decide, log durably, then answer.

A transport (``serving.router`` for govern's JSON, ``serving.v2`` for the Open Inference
Protocol) decodes its body to a typed request (``serving.decoding``) and calls ``predict``. No
answer leaves before its record is committed; a refused body or input is logged as a rejected
attempt. ``measured`` counts every call, whatever its transport, in the predict metrics.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from core.auth.schemas import Principal
from core.errors import GovernanceError, is_connection_error
from serving import metrics
from serving.decoding import Decoded, Refused
from serving.payload import DecisionPayload, ScoredBy
from serving.rejection import reject
from serving.schemas import DecisionOut, ModelRef, PredictRequest
from serving.scoring import Planned, RequestRejected, plan
from serving.shadows import run_shadows
from serving.state import Serving


@dataclass(frozen=True)
class Decided:
    """The decisions made, committed, in the order of the request's instances."""

    request: PredictRequest
    decisions: list[DecisionOut]


@asynccontextmanager
async def measured(serving: Serving, endpoint: str) -> AsyncIterator[float]:
    """Time a predict call and count it by endpoint and status; yields its start time."""
    started = time.perf_counter()
    status_code = 200
    try:
        yield started
    except GovernanceError as exc:
        status_code = exc.status_code
        raise
    except ClientDisconnect:
        status_code = 499  # the caller went away before its body was in; nothing was decided
        raise
    except Exception as exc:
        status_code = 503 if is_connection_error(exc) else 500
        raise
    finally:
        label = serving.endpoint_label(endpoint)
        metrics.PREDICT_REQUESTS.labels(label, str(status_code)).inc()
        metrics.PREDICT_LATENCY.labels(label).observe(time.perf_counter() - started)


async def predict(
    serving: Serving, endpoint: str, decoded: Decoded, principal: Principal, started: float
) -> Decided:
    """Calls are admitted a few at a time, in order of arrival (``Serving.admission``)."""
    serving.deciding += 1  # one event loop per process: no lock needed
    try:
        async with serving.admission:
            return await _decide(serving, endpoint, decoded, principal, started)
    finally:
        serving.deciding -= 1


async def _decide(
    serving: Serving, endpoint: str, decoded: Decoded, principal: Principal, started: float
) -> Decided:
    if isinstance(decoded, Refused):
        raise await reject(serving, endpoint, principal, decoded.body, decoded.error)
    request = decoded.request
    one_row = request.instances is None or len(request.instances) == 1
    # Alone, one row, everything in memory: about a millisecond on the loop, where a worker
    # thread costs two wake-ups of 0.2-0.4 ms each after idle (BENCHMARKS.md, issue 19). With
    # other calls in flight the worker thread is better: the loop keeps reading their bodies,
    # and their records reach the log together and share a commit.
    alone = serving.deciding == 1
    resident = serving.resident(endpoint) if one_row and alone else None
    try:
        if resident is not None:
            planned = plan(serving, endpoint, request, resident)
        else:
            planned = await run_in_threadpool(plan, serving, endpoint, request)
    except RequestRejected as exc:
        raise await reject(serving, endpoint, principal, decoded.body, exc) from None
    latency_ms = (time.perf_counter() - started) * 1000
    payloads = [_payload(endpoint, item, principal, latency_ms) for item in planned]
    await serving.commit(payloads)
    for item in planned:
        metrics.DECISIONS.labels(
            endpoint, item.model.name, str(item.model.version), item.route.name
        ).inc()
        if item.outlier is not None and item.outlier.is_outlier:
            metrics.OUTLIERS.labels(endpoint, item.model.name, str(item.model.version)).inc()
    shadows = serving.config_for(endpoint).shadows
    if shadows:
        serving.shadow_pool.submit(run_shadows, serving, shadows, planned, payloads)
    answers = [_answer(item, payload) for item, payload in zip(planned, payloads, strict=True)]
    return Decided(decoded.request, answers)


def _payload(
    endpoint: str, item: Planned, principal: Principal, latency_ms: float
) -> DecisionPayload:
    model = item.model
    return DecisionPayload.decision(
        endpoint=endpoint,
        key_id=principal.key_id,
        model=ScoredBy(name=model.name, version=model.version, sha256=model.sha256),
        route=item.route.name,
        subject_id=item.instance.subject_id,
        features=item.instance.features,
        context=item.instance.context,
        label=item.label,
        score=item.score,
        outlier=item.outlier,
        latency_ms=latency_ms,
    )


def _answer(item: Planned, payload: DecisionPayload) -> DecisionOut:
    model = item.model
    return DecisionOut(
        decision_id=payload.decision_id,
        endpoint=payload.endpoint,
        model=ModelRef(name=model.name, version=model.version, sha256=model.sha256),
        route=item.route.name,
        label=item.label,
        score=item.score,
        created_at=payload.created_at,
    )
