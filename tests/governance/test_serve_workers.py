"""`govern serve --workers 2`: /metrics counts every worker's predicts, a worker that exits takes
its live gauges out of the sums, and the metrics directory is gone once the server stops.

A real server in a subprocess, on the test database, with a trained model served live."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from core.auth.models import Role
from core.config import Settings
from serving.metrics import MULTIPROC_ENV, forget_exited_workers, shared_across_workers
from tests.conftest import KeyMaker, Served
from tests.support.factories import applicant

ROOT = Path(__file__).resolve().parents[2]
PREDICTS = "govern_predict_requests_total"
STARTUP_S = 300.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(condition: Callable[[], bool], seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {seconds:.0f} s; server log:\n{log.read_text()[-4000:]}")


def _directory(var_dir: Path) -> Path | None:
    found = [d for d in (var_dir / "metrics").glob("*") if d.is_dir()]
    assert len(found) <= 1, found
    return found[0] if found else None


def _pids(directory: Path) -> set[int]:
    """Workers that have written metrics (each creates its files when it imports them)."""
    return {int(f.stem.rsplit("_", 1)[1]) for f in directory.glob("counter_*.db")}


def _counted_by(directory: Path, pid: int) -> float:
    """Predict requests that one worker counted, read from its own file."""
    families = MultiProcessCollector.merge([str(directory / f"counter_{pid}.db")])
    return sum(s.value for m in families for s in m.samples if s.name == PREDICTS)


def _scraped(base: str) -> float:
    """Predict requests counted on /metrics, over every label, asked on a new connection."""
    text = httpx.get(f"{base}/metrics", timeout=30).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == PREDICTS
    )


@contextlib.contextmanager
def _serving(workers: int, log: Path) -> Iterator[str]:
    """`govern serve --workers N` on a free port, as an operator starts it; yields its base URL.
    Stopped on exit as an operator stops it (SIGTERM), and it must exit 0."""
    port = _free_port()
    command = ["serve", "--workers", str(workers), "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "governance.cli", *command],
            cwd=ROOT,
            env={**os.environ, "GOV_LOG_LEVEL": "warning"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        _wait(ready, STARTUP_S, "not ready", log)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode == 0, log.read_text()[-4000:]


def test_metrics_add_up_every_worker_and_their_directory_goes_with_the_server(
    sqlite_only: None, env_settings: Settings, served: Served, make_key: KeyMaker, tmp_path: Path
) -> None:
    var_dir = env_settings.var_dir
    log = tmp_path / "serve.log"
    headers = {"Authorization": f"Bearer {make_key(Role.predictor)}"}
    with _serving(2, log) as base:
        directory = _directory(var_dir)
        assert directory is not None and directory.parent == var_dir.resolve() / "metrics"
        _wait(lambda: len(_pids(directory)) == 2, STARTUP_S, "two workers did not start", log)
        workers = sorted(_pids(directory))

        def predict(i: int) -> int:
            # A new connection each time, so that either worker may take it.
            body = {"subject_id": f"s{i}", "features": applicant(income=30000.0 + 100 * i)}
            url = f"{base}/api/v1/endpoints/{served.endpoint}/predict"
            return httpx.post(url, headers=headers, json=body, timeout=60).status_code

        # Send until both workers have answered some (the sum means something only then).
        sent = 0
        with ThreadPoolExecutor(4) as pool:
            while sent < 400 and not all(_counted_by(directory, pid) for pid in workers):
                assert list(pool.map(predict, range(sent, sent + 8))) == [200] * 8
                sent += 8
        per_worker = [_counted_by(directory, pid) for pid in workers]
        assert all(per_worker), per_worker
        assert sum(per_worker) == sent

        # Whichever worker answers /metrics, it counts every worker's predicts.
        assert [_scraped(base) for _ in range(4)] == [sent] * 4

        # A worker that exits (uvicorn starts another) leaves the live gauges; its counts stay.
        gone = workers[0]
        live_gauges = directory / f"gauge_livesum_{gone}.db"
        assert live_gauges.exists()
        os.kill(gone, signal.SIGTERM)

        def forgotten() -> bool:
            return _scraped(base) == sent and not live_gauges.exists()

        _wait(forgotten, 60, f"worker {gone}'s live gauges stayed", log)
        assert (directory / f"counter_{gone}.db").exists()
    assert not directory.exists()
    assert list((var_dir / "metrics").iterdir()) == []


def _exited_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_fresh_directory_per_start_and_none_left_by_a_killed_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    left = tmp_path / "metrics" / f"{_exited_pid()}-abc"  # a server killed before cleaning up
    left.mkdir(parents=True)
    (left / "counter_1.db").write_bytes(b"")
    running = tmp_path / "metrics" / f"{os.getpid()}-def"  # another server on the same var dir
    running.mkdir()
    with shared_across_workers(tmp_path, 2) as directory:
        assert directory is not None and directory.parent == tmp_path.resolve() / "metrics"
        assert os.environ[MULTIPROC_ENV] == str(directory)
        assert list(directory.iterdir()) == []
        assert not left.exists() and running.exists()
    assert not directory.exists() and MULTIPROC_ENV not in os.environ
    with shared_across_workers(tmp_path, 1) as none:
        assert none is None and MULTIPROC_ENV not in os.environ


def test_a_directory_the_environment_names_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    with shared_across_workers(tmp_path / "var", 4) as directory:
        assert directory is None
        assert os.environ[MULTIPROC_ENV] == str(tmp_path)
    assert tmp_path.exists() and not (tmp_path / "var").exists()


def test_exited_workers_leave_the_live_gauges_and_keep_their_counts(tmp_path: Path) -> None:
    dead, alive = _exited_pid(), os.getpid()
    for name in (f"gauge_livesum_{dead}", f"counter_{dead}", f"gauge_livesum_{alive}"):
        (tmp_path / f"{name}.db").write_bytes(b"")
    assert forget_exited_workers(str(tmp_path)) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"counter_{dead}.db",
        f"gauge_livesum_{alive}.db",
    ]
