"""Refusing a predict request: the attempt is logged (why, and a bounded summary of what was
sent), then the 422 goes back with the rejection's id, so a caller can cite it."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from core.auth.schemas import Principal
from core.errors import GovernanceError
from serving import metrics
from serving.payload import DecisionPayload
from serving.state import Serving


async def reject(
    serving: Serving, endpoint: str, principal: Principal, body: Any, error: GovernanceError
) -> GovernanceError:
    """Log the refused attempt and return ``error`` to raise, its details now naming the record.

    An unknown endpoint is a 404 instead, and nothing is logged."""
    await run_in_threadpool(serving.config_for, endpoint)
    payload = DecisionPayload.rejected(
        endpoint=endpoint, key_id=principal.key_id, error=error, body=body
    )
    await serving.commit([payload])
    metrics.REJECTIONS.labels(endpoint, metrics.rejection_reason(_first_field(error))).inc()
    error.details = {"rejection_id": payload.decision_id, "problems": error.details}
    return error


def _first_field(error: GovernanceError) -> str:
    details = error.details
    if isinstance(details, list) and details and isinstance(details[0], dict):
        return str(details[0].get("field", ""))
    return "body"
