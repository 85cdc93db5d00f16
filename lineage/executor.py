"""Where heavy jobs run. In process by default, behind one small interface.

A job is a module-level function and plain arguments (ids and settings), so that another
executor can ship it elsewhere: with ``GOV_RAY_ADDRESS`` set, jobs are Ray tasks on that cluster.
Job state lives in the database, never in the executor: whoever runs a job writes its progress
and result to its row, so a restarted server loses nothing and marks what was interrupted.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from core.config import Settings

log = logging.getLogger("govern.executor")

# Under `uv run` (as `make run` and `make test` start govern), Ray would start its workers with
# `uv run` in a copy of the working directory, where uv builds no environment and the workers
# cannot import Ray. Workers use this interpreter, govern's venv, instead. Ray reads the
# variable when it is first imported, so it is set here, before any import of Ray.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


class Executor(Protocol):
    name: str

    def submit(self, job: Callable[..., Any], *args: Any) -> Future[Any]: ...

    def shutdown(self) -> None: ...


class InProcessExecutor:
    """A small thread pool: jobs run beside the server, off the request path."""

    name = "in-process"

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


def abandoned(worker: str | None) -> bool:
    """A job recorded as run by ``host:pid`` on this host, where that process no longer exists."""
    owner_host, _, pid = (worker or "").rpartition(":")
    if owner_host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _call(job: Callable[..., Any], *args: Any) -> Any:
    return job(*args)


class RayExecutor:
    """Jobs as Ray tasks (one CPU each) on the cluster at ``address``.

    The workers need govern importable and the database reachable at the same URL, so use
    PostgreSQL, or SQLite with an absolute path on a single machine.
    """

    name = "ray"

    def __init__(self, address: str) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False)
        self._task = ray.remote(num_cpus=1, max_retries=0)(_call)

    def submit(self, job: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = self._task.remote(job, *args).future()
        future.add_done_callback(_log_failure)
        return future

    def shutdown(self) -> None:
        return None  # the cluster is not ours to stop


def make_executor(settings: Settings) -> Executor:
    if settings.ray_address:
        return RayExecutor(settings.ray_address)
    return InProcessExecutor(max_workers=settings.job_workers)
