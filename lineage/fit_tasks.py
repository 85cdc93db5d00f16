"""What runs in a fresh child of the zygote (``lineage.fresh``): one fit, nothing else.

Each task starts in a process that has seen nothing but imports, so nothing the server holds
(caches, global random state, thread settings, monkeypatches) can reach the fit, and it can be
killed when it runs too long or is cancelled. Tasks take plain data (the resolved spec, the data
version's bytes) and return what their caller records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lineage.artifacts import serialize_model
from lineage.datasets import parse_table
from lineage.environment import capture_environment
from lineage.fingerprint import fingerprint
from lineage.pipeline import estimator_params
from lineage.spec import parse_spec
from lineage.training import TrainingOutcome
from lineage.training import train as train_spec

Report = Callable[[float, str], None]


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class Trained:
    """A training run's fit. The artifact is serialized here, in the process that fitted it:
    a pipeline pickled again after a trip through pickle can come out as different bytes
    (shared strings are memoized differently), and the stored bytes must be the fit's own."""

    outcome: TrainingOutcome
    artifact: bytes
    fingerprint: str


def train(resolved_spec: dict[str, Any], content: bytes, fmt: str, *, report: Report) -> Trained:
    """A training run's fit: split, fit, evaluate, gate, with progress reported."""
    outcome = train_spec(parse_spec(resolved_spec), parse_table(content, fmt), report)
    return Trained(
        outcome=outcome,
        artifact=serialize_model(outcome.pipeline),
        fingerprint=fingerprint(outcome.pipeline),
    )


def rebuild(
    resolved_spec: dict[str, Any], content: bytes, fmt: str, *, report: Report
) -> dict[str, Any]:
    """A rebuild's fit of the recorded spec, and what the rebuild report compares."""
    started = time.perf_counter()
    spec = parse_spec(resolved_spec)
    frame = parse_table(content, fmt)
    # The rebuild's own progress runs from 0.20 (training starts) to 0.80 (comparing).
    outcome = train_spec(spec, frame, lambda f, m: report(0.20 + 0.55 * f, f"rebuild: {m}"))
    artifact = serialize_model(outcome.pipeline)
    return {
        "artifact": artifact,
        "fingerprint": fingerprint(outcome.pipeline),
        "params": _plain(estimator_params(outcome.pipeline.named_steps["model"])),
        "split": outcome.split,
        "metrics": outcome.metrics,
        "environment": capture_environment(),
        "fit_s": outcome.fit_seconds,
        "seconds": time.perf_counter() - started,
    }
