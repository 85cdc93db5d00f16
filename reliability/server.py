"""govern under uvicorn with several worker processes, and the faults the drills inject into it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]

from bench.serving import free_port


class Server:
    """One uvicorn master with ``workers`` worker processes, in its own process group."""

    def __init__(self, env: dict[str, str], workers: int, log: Path) -> None:
        self.env = env
        self.workers = workers
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "governance.app:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 120) -> float:
        """Seconds until /readyz answers 200 and every worker is up."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"govern exited with {self.proc.returncode}; see {self.log}")
            try:
                if (
                    httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200
                    and len(self.worker_pids()) >= self.workers
                ):
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"govern was not ready within {timeout} s; see {self.log}")

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        try:
            master = psutil.Process(self.proc.pid)
            return [
                c.pid
                for c in master.children()
                if c.status() != psutil.STATUS_ZOMBIE
                and "resource_tracker" not in " ".join(c.cmdline())
            ]
        except psutil.NoSuchProcess:
            return []

    def kill_worker(self) -> int:
        """SIGKILL one worker; uvicorn's supervisor starts a replacement."""
        pid = self.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill_all(self) -> None:
        """SIGKILL the master and every worker at once: a machine-level crash of the service."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill_all()
