"""Text rules that hold everywhere: no NUL characters and no unpaired surrogates.

PostgreSQL's text and JSONB types cannot hold U+0000, and no name, reason, filter or feature
value here has a use for it. An unpaired UTF-16 surrogate (``"\\ud800"`` in JSON) cannot be
encoded as UTF-8 at all, so it fails the record hash and the database write. Input holding either
is refused at the edge with 422, naming the field, instead of failing deeper in (where, in the
decision log's group commit, it would also fail the requests batched with it).
"""

from __future__ import annotations

import re
from typing import Any

NUL = "\x00"
ESCAPED = b"\\u0000"
# A JSON escape in the surrogate range \ud800-\udfff; the 4 bytes are enough to be suspect.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")

HOLDS_NUL = "must not contain a NUL (\\u0000) character"
HOLDS_SURROGATE = "must not contain an unpaired UTF-16 surrogate (\\ud800-\\udfff)"


def may_hold_bad_text(chunk: bytes) -> bool:
    """Cheap pre-check on raw bytes: a raw NUL, or a JSON escape that may decode to NUL or to a
    lone surrogate. A JSON body can hold a surrogate only through an escape."""
    return b"\x00" in chunk or ESCAPED in chunk or _SURROGATE_ESCAPE.search(chunk) is not None


def text_problem(value: str) -> str | None:
    if NUL in value:
        return HOLDS_NUL
    if _SURROGATE.search(value):
        return HOLDS_SURROGATE
    return None


def _shown(name: str) -> str:
    """A field name fit to echo: the bad characters escaped, and bounded."""
    shown = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", name.replace(NUL, "\\u0000"))
    return shown if len(shown) <= 200 else shown[:200] + "…"


def find_bad_text(data: Any) -> tuple[str, str] | None:
    """(dotted path, problem) of the first key or string value holding NUL or a lone surrogate,
    or None. Iterative, so a deeply nested document cannot exhaust the stack."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem is not None:
                return (_shown(path or "body"), problem)
        elif isinstance(value, dict):
            for key, item in reversed(list(value.items())):
                name = str(key)
                child = f"{path}.{name}" if path else name
                problem = text_problem(name)
                if problem is not None:
                    return (_shown(child), problem)
                stack.append((child, item))
        elif isinstance(value, list):
            for i, item in reversed(list(enumerate(value))):
                stack.append((f"{path}.{i}" if path else str(i), item))
    return None
