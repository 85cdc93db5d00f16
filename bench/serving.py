"""Serving benchmark: govern (every decision durably logged) against MLServer 1.7 and bare sklearn.

One run, one machine, one load generator, the same model artifact and the same applicants:

1. bare in-process ``predict_proba`` of the Pipeline on a one-row DataFrame: the limit;
2. MLServer 1.7.1 with its scikit-learn runtime serving the same artifact (installed here, in
   its own venv, by this script), which logs nothing;
3. govern predict with the decision log, on SQLite and on PostgreSQL.

It reports throughput at a closed-loop concurrency of 8, and p50/p99 latency at fixed offered
rates of 60 and 200 requests/s (open loop, latency counted from each request's scheduled time),
each with its ratio to MLServer; at 200/s both servers are past what two shared cores can do,
so that row shows how each behaves in overload (govern sheds with 503, MLServer queues). After each govern run it checks that the decisions in the log equal the
200 responses received.

    uv run python -m bench.serving [--seconds 15] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from core import migrate
from core.auth import service as auth_service
from core.auth.models import Role
from core.config import Settings
from core.db import make_engine, session_factory, transaction
from governance.demo import run_demo
from lineage import registry
from lineage.artifacts import ArtifactStore
from lineage.input_schema import InputSchema, positive_proba, to_frame
from lineage.synthetic import FEATURES, NUMERIC, applicant_features, generate_loans

MLSERVER = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1"]
# uvloop 0.22+ removed what MLServer 1.7.1 calls at start-up ("no current event loop").
PINS = ["scikit-learn==1.9.1", "pandas==2.3.3", "numpy==1.26.4", "scipy==1.17.1", "uvloop==0.21.0"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def applicants(n: int) -> list[dict[str, Any]]:
    return [applicant_features(r) for r in generate_loans(n, seed=123).to_dict(orient="records")]


def govern_body(row: dict[str, Any], i: int) -> bytes:
    return json.dumps(
        {"subject_id": f"bench-{i}", "features": row, "context": {"sex": "F", "age": 40}}
    ).encode()


def mlserver_body(row: dict[str, Any]) -> bytes:
    inputs: list[dict[str, Any]] = []
    for name in FEATURES:
        value = row[name]
        if name in NUMERIC:
            inputs.append({"name": name, "shape": [1], "datatype": "FP64", "data": [value]})
        else:
            inputs.append(
                {
                    "name": name,
                    "shape": [1],
                    "datatype": "BYTES",
                    "data": [value],
                    "parameters": {"content_type": "str"},
                }
            )
    return json.dumps(
        {
            "parameters": {"content_type": "pd"},
            "inputs": inputs,
            "outputs": [{"name": "predict_proba"}],
        }
    ).encode()


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} never became ready")


# Load generation ---------------------------------------------------------------------------------


class StaleConnection(ConnectionError):
    """The server closed the connection without answering (an idle keep-alive timed out)."""


class Connection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams.

    The load generator shares the machine with the servers, so it must be cheap: requests are
    pre-encoded bytes and responses are read by Content-Length. Same client for every server.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(raw)
            status_line = await self.reader.readline()
        except ConnectionResetError as exc:
            raise StaleConnection("reset by the server before an answer") from exc
        if not status_line:
            raise StaleConnection("closed by the server before an answer")
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def encode_requests(
    url: str, headers: dict[str, str], bodies: list[bytes]
) -> tuple[str, int, list[bytes]]:
    parsed = httpx.URL(url)
    head = "".join(
        f"{k}: {v}\r\n" for k, v in {"Host": f"{parsed.host}:{parsed.port}", **headers}.items()
    )
    raws = [
        f"POST {parsed.raw_path.decode()} HTTP/1.1\r\n{head}Content-Length: {len(b)}\r\n\r\n".encode()
        + b
        for b in bodies
    ]
    return str(parsed.host), int(parsed.port or 80), raws


TIMED_OUT, CONNECTION_ERROR = -1, 0
FAILURE_NAMES = {TIMED_OUT: "timeout_30s", CONNECTION_ERROR: "connection_error"}


async def _send(pool: list[Connection], host: str, port: int, raw: bytes) -> int:
    """One request on a pooled keep-alive connection.

    A pooled connection the server closed while it sat idle (keep-alive timeout) fails before
    the server read anything; like any HTTP client, retry that once on a new connection. Every
    other failure counts. The log check after each run would show a request that was retried
    after it had been decided (a 200 would be missing for a logged decision).
    """
    reused = bool(pool)
    conn = pool.pop() if pool else Connection(host, port)
    for attempt in range(2):
        try:
            status = await asyncio.wait_for(conn.request(raw), 30)
        except TimeoutError:
            conn.close()
            return TIMED_OUT
        except StaleConnection:
            conn.close()
            if not reused or attempt:
                return CONNECTION_ERROR
            conn = Connection(host, port)
            continue
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
            conn.close()
            return CONNECTION_ERROR
        pool.append(conn)
        return status
    return CONNECTION_ERROR


async def closed_loop(
    url: str, headers: dict[str, str], bodies: list[bytes], seconds: float, concurrency: int = 8
) -> dict[str, Any]:
    host, port, raws = encode_requests(url, headers, bodies)
    ok = errors = 0
    stop = time.perf_counter() + seconds
    latencies: list[float] = []
    pool: list[Connection] = []

    async def worker(offset: int) -> None:
        nonlocal ok, errors
        i = offset
        while time.perf_counter() < stop:
            started = time.perf_counter()
            status = await _send(pool, host, port, raws[i % len(raws)])
            latencies.append(time.perf_counter() - started)
            if status == 200:
                ok += 1
            else:
                errors += 1
            i += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - started
    for conn in pool:
        conn.close()
    return {
        "ok": ok,
        "errors": errors,
        "throughput_rps": ok / elapsed,
        "p50_ms": _pct(latencies, 50),
        "p99_ms": _pct(latencies, 99),
    }


async def fixed_rate(
    url: str, headers: dict[str, str], bodies: list[bytes], seconds: float, rate: float
) -> dict[str, Any]:
    """Open loop: request i is due at start + i/rate; latency counts from when it was due.

    Latency percentiles are over the answered (200) requests; ``shed_503`` counts quick
    refusals (load shedding), ``failed`` counts timeouts, resets and any other status.
    """
    host, port, raws = encode_requests(url, headers, bodies)
    latencies: list[float] = []
    shed_latencies: list[float] = []
    ok = shed = 0
    failed: dict[str, int] = {}
    pool: list[Connection] = []

    async def one(i: int, scheduled: float) -> None:
        nonlocal ok, shed
        status = await _send(pool, host, port, raws[i % len(raws)])
        took = time.perf_counter() - scheduled
        if status == 200:
            ok += 1
            latencies.append(took)
        elif status == 503:
            shed += 1
            shed_latencies.append(took)
        else:
            name = FAILURE_NAMES.get(status, f"http_{status}")
            failed[name] = failed.get(name, 0) + 1

    start = time.perf_counter() + 0.1
    tasks = []
    for i in range(int(seconds * rate)):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    for conn in pool:
        conn.close()
    return {
        "offered_rps": rate,
        "sent": len(tasks),
        "ok": ok,
        "shed_503": shed,
        "failed": failed,
        "answered_rps": ok / seconds,
        "p50_ms": _pct(latencies, 50),
        "p99_ms": _pct(latencies, 99),
        "shed_p99_ms": _pct(shed_latencies, 99),
    }


RATES = (60, 200)


def _pct(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
    return ordered[index] * 1000


def measure(
    url: str, headers: dict[str, str], bodies: list[bytes], seconds: float
) -> dict[str, Any]:
    warm = asyncio.run(closed_loop(url, headers, bodies, 2.0))
    closed = asyncio.run(closed_loop(url, headers, bodies, seconds))
    result: dict[str, Any] = {"closed_loop_c8": closed, "warmup_ok": warm["ok"]}
    for rate in RATES:
        result[f"fixed_{rate}rps"] = asyncio.run(fixed_rate(url, headers, bodies, seconds, rate))
    return result


# Systems under test ------------------------------------------------------------------------------


def bare_sklearn(settings: Settings, rows: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    engine = make_engine(settings)
    with transaction(session_factory(engine)) as session:
        _m, version = registry.get_version(session=session, name="credit", version=1)
        schema = InputSchema.from_document(version.input_schema)
        pipeline = ArtifactStore(settings.artifacts).load_model(version.artifact_sha256)
    engine.dispose()
    for row in rows[:50]:
        positive_proba(pipeline, to_frame(schema, [row]), schema)
    latencies = []
    stop = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < stop:
        started = time.perf_counter()
        positive_proba(pipeline, to_frame(schema, [rows[i % len(rows)]]), schema)
        latencies.append(time.perf_counter() - started)
        i += 1
    return {
        "calls": i,
        "throughput_rps": i / seconds,
        "p50_ms": _pct(latencies, 50),
        "p99_ms": _pct(latencies, 99),
    }


def ensure_mlserver(base: Path) -> Path:
    venv = base / "mlserver-venv"
    uv = shutil.which("uv") or f"{sys.executable} -m uv"
    if not (venv / "bin" / "mlserver").exists():
        print("installing MLServer 1.7.1 in its own venv ...", flush=True)
        subprocess.run([*uv.split(), "venv", "-q", "-p", "3.11", str(venv)], check=True)
        env = {**os.environ, "VIRTUAL_ENV": str(venv)}
        subprocess.run([*uv.split(), "pip", "install", "-q", *MLSERVER, *PINS], check=True, env=env)
    return venv / "bin" / "mlserver"


def mlserver_repository(
    base: Path, settings: Settings, parallel_workers: int | None = None
) -> tuple[Path, int]:
    """A model repository for MLServer serving credit v1's verified artifact; (root, HTTP port).
    ``parallel_workers=0`` keeps inference in the server process (MLServer's default is 1)."""
    engine = make_engine(settings)
    with transaction(session_factory(engine)) as session:
        _m, version = registry.get_version(session=session, name="credit", version=1)
        artifact = ArtifactStore(settings.artifacts).get(version.artifact_sha256)  # verified bytes
    engine.dispose()
    root = base / "mlserver"
    model_dir = root / "credit"
    model_dir.mkdir(parents=True)
    (model_dir / "model.joblib").write_bytes(artifact)
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "credit",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    port = free_port()
    server_settings: dict[str, Any] = {
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "debug": False,
    }
    if parallel_workers is not None:
        server_settings["parallel_workers"] = parallel_workers
    (root / "settings.json").write_text(json.dumps(server_settings))
    return root, port


def run_mlserver(
    base: Path, settings: Settings, bodies: list[bytes], seconds: float
) -> dict[str, Any]:
    mlserver = ensure_mlserver(Path(os.environ.get("GOV_BENCH_CACHE", base)))
    root, port = mlserver_repository(base, settings)
    proc = subprocess.Popen(
        [str(mlserver), "start", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/v2/models/credit/ready")
        url = f"http://127.0.0.1:{port}/v2/models/credit/infer"
        check = httpx.post(url, content=bodies[0], headers={"Content-Type": "application/json"})
        assert check.status_code == 200, check.text
        return measure(url, {"Content-Type": "application/json"}, bodies, seconds)
    finally:
        stop(proc)


def start_govern(
    settings: Settings,
    extra_env: dict[str, str] | None = None,
    *,
    workers: int = 1,
    prefix: Sequence[str] = (),
) -> tuple[subprocess.Popen[bytes], int]:
    """govern under uvicorn (``workers`` processes) on a free port, ready to serve; ``prefix``
    runs it under another command (``taskset``, ``nice``)."""
    port = free_port()
    env = {
        **os.environ,
        "GOV_DATABASE_URL": settings.database_url,
        "GOV_VAR_DIR": str(settings.var_dir),
        "GOV_LOG_LEVEL": "warning",
        **(extra_env or {}),
    }
    proc = subprocess.Popen(
        [
            *prefix,
            sys.executable,
            "-m",
            "uvicorn",
            "governance.app:create_app",
            "--factory",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz")
    except BaseException:
        stop(proc)
        raise
    return proc, port


def run_govern(settings: Settings, key: str, bodies: list[bytes], seconds: float) -> dict[str, Any]:
    proc, port = start_govern(settings)
    url = f"http://127.0.0.1:{port}/api/v1/endpoints/credit/predict"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        before = count_decisions(settings)
        result = measure(url, headers, bodies, seconds)
    finally:
        stop(proc)
    logged = count_decisions(settings) - before
    answered = (
        result["closed_loop_c8"]["ok"]
        + sum(result[f"fixed_{rate}rps"]["ok"] for rate in RATES)
        + result["warmup_ok"]
    )
    result["decisions_logged"] = logged
    result["answered_200"] = answered
    result["log_matches_200s"] = logged == answered
    return result


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def count_decisions(settings: Settings) -> int:
    engine = make_engine(settings)
    with engine.connect() as conn:
        n = conn.execute(
            sa.text("SELECT count(*) FROM decision WHERE kind = 'decision'")
        ).scalar_one()
    engine.dispose()
    return int(n)


def prepare(settings: Settings) -> str:
    migrate.upgrade(settings)
    run_demo(settings, decisions=0)
    engine = make_engine(settings)
    with transaction(session_factory(engine)) as session:
        key = auth_service.create_key(
            session=session, name="bench", role=Role.predictor, created_by="bench"
        ).key
    engine.dispose()
    return key


def pg_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    name = f"govern_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "GOV_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    rows = applicants(1000)
    govern_bodies = [govern_body(r, i) for i, r in enumerate(rows)]
    ml_bodies = [mlserver_body(r) for r in rows]
    results: dict[str, Any] = {"seconds": args.seconds}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        sqlite = Settings(var_dir=base / "sqlite", environment="test")
        key = prepare(sqlite)
        print("bare sklearn ...", flush=True)
        results["bare_sklearn"] = bare_sklearn(sqlite, rows, args.seconds)
        print("MLServer ...", flush=True)
        results["mlserver"] = run_mlserver(base, sqlite, ml_bodies, args.seconds)
        print("govern on SQLite ...", flush=True)
        results["govern_sqlite"] = run_govern(sqlite, key, govern_bodies, args.seconds)
        if not args.no_postgres:
            url, drop = pg_database(args.pg_url)
            try:
                pg = Settings(var_dir=base / "pg", database_url=url, environment="test")
                pg_key = prepare(pg)
                print("govern on PostgreSQL ...", flush=True)
                results["govern_postgres"] = run_govern(pg, pg_key, govern_bodies, args.seconds)
            finally:
                drop()
    ml = results["mlserver"]
    for name in ("govern_sqlite", "govern_postgres"):
        if name in results:
            r = results[name]
            r["throughput_ratio_to_mlserver"] = round(
                r["closed_loop_c8"]["throughput_rps"] / ml["closed_loop_c8"]["throughput_rps"], 2
            )
            for rate in RATES:
                mine, theirs = r[f"fixed_{rate}rps"], ml[f"fixed_{rate}rps"]
                r[f"p50_ratio_to_mlserver_{rate}rps"] = round(mine["p50_ms"] / theirs["p50_ms"], 2)
                r[f"p99_ratio_to_mlserver_{rate}rps"] = round(mine["p99_ms"] / theirs["p99_ms"], 2)
    print(
        json.dumps(results, indent=2, default=lambda v: round(v, 3) if isinstance(v, float) else v)
    )


if __name__ == "__main__":
    main()
