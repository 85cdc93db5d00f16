"""The part of a rebuild that runs in a fresh process: fit the recorded spec on the given bytes.

It is started from a clean interpreter (a forkserver that has imported only this module and what
it needs), one process per rebuild, so nothing the server holds (caches, global random state,
thread settings, monkeypatches) can reach the fit. It returns plain data: the artifact bytes as
govern would store them, and what the report compares.
"""

from __future__ import annotations

import json
import time
from typing import Any

from lineage.artifacts import serialize_model
from lineage.datasets import parse_table
from lineage.environment import capture_environment
from lineage.fingerprint import fingerprint
from lineage.spec import parse_spec
from lineage.training import train


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def fit(resolved_spec: dict[str, Any], content: bytes, fmt: str) -> dict[str, Any]:
    started = time.perf_counter()
    spec = parse_spec(resolved_spec)
    frame = parse_table(content, fmt)
    outcome = train(spec, frame)
    artifact = serialize_model(outcome.pipeline)
    return {
        "artifact": artifact,
        "fingerprint": fingerprint(outcome.pipeline),
        "params": _plain(outcome.pipeline.named_steps["model"].get_params(deep=False)),
        "split": outcome.split,
        "metrics": outcome.metrics,
        "environment": capture_environment(),
        "fit_s": outcome.fit_seconds,
        "seconds": time.perf_counter() - started,
    }
