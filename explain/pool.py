"""Worker processes for the sampling explainers, so they never slow predict down.

Anchors, counterfactuals and robustness probes call the model thousands of times. Run in the
server process they hold its interpreter (and, with the GIL, its predict path) for seconds each:
a reviewer saw 16 of them push predict's maximum latency from 15 ms to 1.26 s. They run here
instead: in ``GOV_EXPLAIN_WORKERS`` processes started with ``spawn`` (a clean interpreter, not a
fork of a threaded server), at lower CPU priority and on one thread each, so the kernel gives
predict the cores first. Each worker keeps its own cache of model contexts (the verified model,
its training rows, fitted explainers), built exactly as the server builds them, so the same
request gives the same explanation in either place.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

from threadpoolctl import threadpool_limits

from core.config import Settings
from core.db import make_engine, session_factory
from core.errors import ServiceUnavailable
from explain.compute import compute
from explain.context import ContextCache
from serving.state import Serving

log = logging.getLogger("govern.explain.pool")

NICENESS = 10
_WORKER: dict[str, ContextCache] = {}  # the worker's own contexts, set by _start_worker


def _start_worker(settings: Settings) -> None:
    """Runs once in each worker process."""
    try:
        os.nice(NICENESS)
    except OSError:
        log.warning("explanation worker could not lower its priority")
    threadpool_limits(1)  # one core each: the other belongs to serving
    sessions = session_factory(make_engine(settings))
    _WORKER["contexts"] = ContextCache(
        sessions, Serving.create(settings, sessions).model, settings.explain_cache_size
    )


def _explain(
    name: str,
    version: int,
    sha256: str,
    features: dict[str, Any],
    label: Any,
    method: str,
    params: dict[str, Any],
) -> dict[str, Any]:
    context = _WORKER["contexts"].get(name, version, sha256)
    return compute(context, features, label, method, params)


class ExplainPool:
    """Started on first use; a worker that dies is replaced, and its caller told to retry."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.settings.explain_workers,
                    mp_context=get_context("spawn"),
                    initializer=_start_worker,
                    initargs=(self.settings,),
                )
            return self._pool

    def explain(
        self,
        model: dict[str, Any],
        features: dict[str, Any],
        label: Any,
        method: str,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        executor = self._executor()
        args = (model["name"], int(model["version"]), model["sha256"], features, label, method)
        try:
            result: dict[str, Any] = executor.submit(_explain, *args, params).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is executor:
                    self._pool = None
            executor.shutdown(wait=False, cancel_futures=True)
            raise ServiceUnavailable(
                "the explanation worker stopped while computing; retry",
                headers={"Retry-After": "1"},
            ) from None
        return result

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
