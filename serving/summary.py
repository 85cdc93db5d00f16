"""A bounded summary of a request body, for the record of a rejected request.

A rejected predict call is logged as an attempt, with what was sent and why it was refused. The
caller chooses both, so what is stored is capped: strings, keys, items per container, depth and
the number of values in all, with every cut marked where it was made. A 400 KB field name costs
a few hundred bytes of log, however often it is sent. Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_STRING = 256
MAX_KEY = 128
MAX_ITEMS = 50
MAX_DEPTH = 8
MAX_VALUES = 1000


def clip(text: str, limit: int = MAX_STRING) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more characters]"


@dataclass
class _Budget:
    values: int = MAX_VALUES
    truncated: bool = False

    def take(self) -> bool:
        if self.values <= 0:
            self.truncated = True
            return False
        self.values -= 1
        return True


def summarize(value: Any) -> tuple[Any, bool]:
    """(the bounded, JSON-safe summary, whether anything was cut)."""
    budget = _Budget()
    summary = _summary(value, 0, budget)
    return summary, budget.truncated


def _summary(value: Any, depth: int, budget: _Budget) -> Any:
    if not budget.take():
        return "…[more values not kept]"
    if isinstance(value, str):
        budget.truncated |= len(value) > MAX_STRING
        return clip(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            budget.truncated = True
            return "…[nested deeper, not kept]"
        return _container(value, depth, budget)
    if value is None or isinstance(value, bool | int | float):
        return value
    return clip(str(value))


def _container(value: dict[Any, Any] | list[Any], depth: int, budget: _Budget) -> Any:
    items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
    left = len(items) - MAX_ITEMS
    budget.truncated |= left > 0
    if isinstance(value, list):
        listed = [_summary(item, depth + 1, budget) for _i, item in items[:MAX_ITEMS]]
        return [*listed, f"…[{left} more items]"] if left > 0 else listed
    out: dict[str, Any] = {}
    for key, item in items[:MAX_ITEMS]:
        name = str(key)
        budget.truncated |= len(name) > MAX_KEY
        out[clip(name, MAX_KEY)] = _summary(item, depth + 1, budget)
    if left > 0:
        out["…"] = f"{left} more keys"
    return out
