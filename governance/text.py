"""Text rules that hold everywhere: no NUL characters.

PostgreSQL's text and JSONB types cannot hold U+0000, and no name, reason, filter or feature
value here has a use for it. Input holding one is refused at the edge with 422, naming the field,
instead of failing inside the database (where, in the decision log's group commit, it would also
fail the requests batched with it).
"""

from __future__ import annotations

from typing import Any

NUL = "\x00"
ESCAPED = b"\\u0000"


def may_hold_nul(chunk: bytes) -> bool:
    """Cheap pre-check on raw bytes: a raw NUL, or a JSON escape that may decode to one."""
    return b"\x00" in chunk or ESCAPED in chunk


def find_nul(data: Any) -> str | None:
    """The dotted path of the first key or string value holding NUL, or None. Iterative, so a
    deeply nested document cannot exhaust the stack."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                return path or "body"
        elif isinstance(value, dict):
            for key, item in reversed(list(value.items())):
                name = str(key)
                child = f"{path}.{name}" if path else name
                if NUL in name:
                    return child.replace(NUL, "\\u0000")
                stack.append((child, item))
        elif isinstance(value, list):
            for i, item in reversed(list(enumerate(value))):
                stack.append((f"{path}.{i}" if path else str(i), item))
    return None
