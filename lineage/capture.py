"""Lineage capture around your own training code, for models trained outside govern.

    from lineage.capture import TrainingCapture

    capture = TrainingCapture(
        dataset={"name": "loans", "repo": "/data/loans", "path": "data/loans.csv", "rev": "v3"},
        seeds={"split": 42, "estimator": 42},
    )
    with capture:
        frame = capture.read_data()            # the exact bytes of that data version, via DVC
        pipeline.fit(frame[features], frame["repaid"])
    capture.register(
        pipeline, model="credit", url="http://127.0.0.1:8000", api_key=KEY,
        target={"column": "repaid", "positive_class": 1},
        features=[{"name": "income", "type": "numeric"}, ...],
    )

It records the seeds you declare (and seeds Python's and NumPy's global generators with
``seeds["global"]`` when given), the data version, the estimator's parameters, the whole
environment and the code's git commit, and uploads the fitted Pipeline in skops format.
"""

from __future__ import annotations

import base64
import random
from types import TracebackType
from typing import Any

import httpx
import numpy as np
import pandas as pd

from core.db import utcnow
from lineage.datasets import read_snapshot
from lineage.environment import capture_environment, code_version


class TrainingCapture:
    def __init__(self, *, dataset: dict[str, Any], seeds: dict[str, int]) -> None:
        if not dataset:
            raise ValueError("dataset is required: the data version the model is trained on")
        if not seeds:
            raise ValueError("seeds are required: every seed your training code uses")
        self.dataset = dict(dataset)
        self.seeds = dict(seeds)
        self.started_at: Any = None
        self.finished_at: Any = None
        self.environment: dict[str, Any] = {}
        self.code: dict[str, Any] = {}

    def __enter__(self) -> TrainingCapture:
        if "global" in self.seeds:
            random.seed(self.seeds["global"])
            np.random.seed(self.seeds["global"] % 2**32)
        self.environment = capture_environment()
        self.code = code_version()
        self.started_at = utcnow()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finished_at = utcnow()

    def read_data(self) -> pd.DataFrame:
        """The declared data version, read through DVC (needs repo/path/rev in ``dataset``)."""
        snap = read_snapshot(self.dataset["repo"], self.dataset["path"], self.dataset["rev"])
        return snap.frame()

    def payload(
        self,
        pipeline: Any,
        *,
        target: dict[str, Any],
        features: list[dict[str, Any]],
        protected: list[dict[str, Any]] | None = None,
        description: str = "",
        intended_use: str = "",
        gate: dict[str, Any] | None = None,
        decision: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        import skops.io as sio

        estimator = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
        params = {k: v for k, v in estimator.get_params(deep=False).items() if _plain(v)}
        body: dict[str, Any] = {
            "description": description,
            "intended_use": intended_use,
            "dataset": self.dataset,
            "seeds": self.seeds,
            "target": target,
            "features": features,
            "protected": protected or [],
            "params": params,
            "environment": self.environment or capture_environment(),
            "code": self.code or code_version(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "artifact": {
                "format": "skops",
                "content_base64": base64.b64encode(sio.dumps(pipeline)).decode("ascii"),
            },
        }
        if gate is not None:
            body["gate"] = gate
        if decision is not None:
            body["decision"] = decision
        return body

    def register(
        self,
        pipeline: Any,
        *,
        model: str,
        url: str | None = None,
        api_key: str,
        client: httpx.Client | None = None,
        timeout: float = 300.0,
        **fields: Any,
    ) -> dict[str, Any]:
        """Upload the fitted Pipeline with its lineage; returns the new model version."""
        body = self.payload(pipeline, **fields)
        headers = {"Authorization": f"Bearer {api_key}"}
        own = client is None
        http = client or httpx.Client(base_url=url or "http://127.0.0.1:8000", timeout=timeout)
        try:
            response = http.post(f"/api/v1/models/{model}/versions", json=body, headers=headers)
        finally:
            if own:
                http.close()
        if response.status_code >= 400:
            raise RuntimeError(f"registration refused ({response.status_code}): {response.text}")
        result: dict[str, Any] = response.json()
        return result


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
