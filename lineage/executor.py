"""Where heavy jobs run. In process by default, behind one small interface.

A job is a module-level function and plain arguments (ids and settings), so that another
executor can ship it elsewhere (Ray, when GOV_RAY_ADDRESS is set, in a later change). Job state
lives in the database, never in the executor.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from governance.config import Settings

log = logging.getLogger("govern.executor")


class Executor(Protocol):
    def submit(self, job: Callable[..., Any], *args: Any) -> Future[Any]: ...

    def shutdown(self) -> None: ...


class InProcessExecutor:
    """A small thread pool: jobs run beside the server, off the request path."""

    def __init__(self, max_workers: int = 1) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="govern-job")

    def submit(self, job: Callable[..., Any], *args: Any) -> Future[Any]:
        future = self._pool.submit(job, *args)
        future.add_done_callback(_log_failure)
        return future

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _log_failure(future: Future[Any]) -> None:
    exc = future.exception() if not future.cancelled() else None
    if exc is not None:
        log.error("job failed outside its own error handling", exc_info=exc)


def worker_id() -> str:
    """Who runs a job: host and pid, so a restart can tell abandoned jobs from live ones."""
    return f"{socket.gethostname()}:{os.getpid()}"


def make_executor(settings: Settings) -> Executor:
    return InProcessExecutor(max_workers=settings.job_workers)
