"""A deterministic fingerprint of a fitted model.

Two fits that learned the same thing get the same fingerprint, whatever the serialisation bytes
look like. It hashes the estimator's parameters and every fitted attribute, recursively, with
arrays by dtype, shape and raw bytes. The scikit-learn version stamp is left out: it says which
library pickled the model, not what the model is.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import numpy as np

_SKIP = {"_sklearn_version"}


def _feed(h: Any, value: Any, depth: int = 0) -> None:  # noqa: PLR0912 - one branch per kind
    if depth > 60:
        raise ValueError("model structure too deep to fingerprint")
    if value is None or isinstance(value, bool | int | str | bytes):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, float):
        h.update(b"f:" + struct.pack("<d", value))
    elif isinstance(value, np.generic):
        _feed(h, value.item(), depth + 1)
    elif isinstance(value, np.ndarray):
        if value.dtype == object:
            h.update(f"objarray{value.shape};".encode())
            for item in value.ravel():
                _feed(h, item, depth + 1)
        elif value.dtype.names:
            # Structured arrays (tree nodes) carry padding bytes with arbitrary contents: hash
            # field by field so that only the values count.
            h.update(f"struct{value.shape}:{value.dtype.names};".encode())
            for name in value.dtype.names:
                _feed(h, np.ascontiguousarray(value[name]), depth + 1)
        else:
            array = np.ascontiguousarray(value)
            h.update(f"array:{array.dtype.str}:{array.shape};".encode())
            h.update(array.tobytes())
    elif isinstance(value, dict):
        h.update(b"dict{")
        for key in sorted(value, key=repr):
            if key in _SKIP:
                continue
            _feed(h, key, depth + 1)
            _feed(h, value[key], depth + 1)
        h.update(b"}")
    elif isinstance(value, list | tuple):
        h.update(f"{type(value).__name__}[{len(value)}".encode())
        for item in value:
            _feed(h, item, depth + 1)
        h.update(b"]")
    elif isinstance(value, type):
        h.update(f"type:{value.__module__}.{value.__qualname__};".encode())
    elif callable(value) and not hasattr(value, "__dict__"):
        h.update(f"callable:{getattr(value, '__qualname__', repr(value))};".encode())
    else:
        h.update(f"obj:{type(value).__module__}.{type(value).__qualname__}".encode())
        state = value.__getstate__() if hasattr(value, "__getstate__") else vars(value)
        _feed(h, state, depth + 1)


def fingerprint(model: Any) -> str:
    h = hashlib.sha256()
    _feed(h, model)
    return h.hexdigest()
