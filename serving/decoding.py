"""Predict bodies to typed requests, without trusting them: every failure is a named 422.

Each transport (the native JSON route here, the Open Inference Protocol in ``serving.v2``)
decodes its body to a ``PredictRequest`` and hands the result to the one ``serving.predict``.
A body that cannot be decoded is handed over too, as ``Refused``: predict logs it as a rejected
attempt before answering 422.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from core.errors import InvalidInput, field_list, validation_details
from serving.schemas import PredictRequest

MAX_NESTING = 32


@dataclass(frozen=True)
class Accepted:
    """A typed request, and the body it came from (kept for the log if the input is refused)."""

    request: PredictRequest
    body: Any


@dataclass(frozen=True)
class Refused:
    """Why a body is refused, and the body to summarize in the log (None: not JSON, or nested
    too deeply to walk)."""

    error: InvalidInput
    body: Any


Decoded = Accepted | Refused


def decode_json(raw: bytes) -> Decoded:
    """A native predict body: ``{features, subject_id?, context?}`` or ``{instances: [...]}``."""
    try:
        data = json.loads(raw)
    except RecursionError:
        return Refused(_too_deep(), None)
    except (ValueError, UnicodeDecodeError) as exc:
        return Refused(
            InvalidInput(
                "the request body is not valid JSON", details=[{"field": "", "message": str(exc)}]
            ),
            None,
        )
    return validated(data)


def validated(data: Any) -> Decoded:
    """Parsed JSON (or its equivalent built by a transport) checked as a ``PredictRequest``."""
    if _depth(data) > MAX_NESTING:
        return Refused(_too_deep(), None)  # not summarized for the log either
    try:
        return Accepted(PredictRequest.model_validate(data), data)
    except ValidationError as exc:
        details = validation_details(exc.errors())
        fields = field_list([d["field"] for d in details])
        return Refused(InvalidInput(f"invalid predict request: {fields}", details=details), data)


def _too_deep() -> InvalidInput:
    return InvalidInput(
        "the body is nested too deeply", details=[{"field": "", "message": "nesting"}]
    )


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_NESTING:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level
