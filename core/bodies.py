"""Parsing a JSON request body that a route reads itself (after the role check, off the loop)."""

from __future__ import annotations

import json
from typing import Any

from core.errors import InvalidInput


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object, or a 422 that says what is wrong with the body (never a 500)."""
    if not raw.strip():
        raise InvalidInput.at("body", "the request body is empty", "the request body is empty")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise InvalidInput.at(
            "body", "nested too deeply", "the body is nested too deeply"
        ) from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput.at(
            "body", "not valid JSON", "the request body is not valid JSON"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput.at("body", "expected a JSON object", "the body must be a JSON object")
    return data
