"""Predict under load, measured with compiled load generators that do not share the server's core.

The server runs pinned to one core (``taskset``), the load generator to the other: ``wrk``, with
a Lua script (``bench/wrk_bodies.lua``) that rotates 1,000 applicants' bodies, counts statuses,
and for fixed offered rates paces each of 32 connections with exponential gaps, so that arrivals
are close to a Poisson stream (``hey -q`` fires its workers in lock-step bursts, which measured a
p50 of 23 ms at 100 req/s where one worker alone saw 5.5 ms). Each figure is from one run, side by
side:

- the compiled scoring time of one row (``LoadedModel.scores``, in this process): the floor;
- govern with its durable decision log, on SQLite and on PostgreSQL, one worker on one core;
- MLServer 1.7.1 (logs nothing), one worker on the same core, driven the same way;
- govern with 2 workers on both cores, the generator at ``nice 19`` beside them.

The headline is the server process's own CPU time per decision (from ``/proc`` through psutil)
over the compiled scoring time of one row: a ratio that does not depend on how busy the machine
is. Fixed-rate points give p50/p99, the 503s shed and the 200s, and every govern run checks that
every 200 answered is in the log; the log may hold a few more, answered after wrk stopped
counting (at most one per connection per phase).

    uv run python -m bench.predict_load [--seconds 10] [--rates 50,100,150,200] [--no-postgres]
        [--no-mlserver] [--workers 1,2] [--profile DIR]

``--profile DIR`` records a py-spy profile of the one-worker SQLite server under closed-loop
load (``DIR/govern-sqlite.txt``, collapsed stacks) and prints where its time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench import serving as serving_bench
from bench.profile_breakdown import table
from bench.serving import (
    applicants,
    count_decisions,
    ensure_mlserver,
    govern_body,
    mlserver_body,
    mlserver_repository,
    pg_database,
    prepare,
    stop,
    wait_ready,
)
from core.config import Settings
from core.db import make_engine, session_factory, transaction
from lineage import registry
from lineage.artifacts import ArtifactStore
from serving.model_cache import ModelCache

SERVER_CPU, CLIENT_CPU = "1", "0"
LUA = Path(__file__).with_name("wrk_bodies.lua")
TOOLS = ("wrk", "taskset")
P99_TARGET_MS = 10.0


@dataclass
class Point:
    """One load phase against one server."""

    name: str
    offered_rps: float | None  # None: closed loop
    seconds: float
    answered_rps: float = 0.0
    ok: int = 0
    shed: int = 0  # 503
    other: int = 0  # any other status, or no answer
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    server_cpu_s: float = 0.0
    server_sys_s: float = 0.0  # of which in the kernel
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_ms_per_decision(self) -> float:
        return self.server_cpu_s * 1000 / self.ok if self.ok else float("nan")


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    headers: dict[str, str]
    bodies: Path  # one body per line
    decisions: Callable[[], int] | None = None  # the log's count, for govern

    def cpu_seconds(self) -> tuple[float, float]:
        return cpu_times(self.proc)


def cpu_times(proc: subprocess.Popen[bytes]) -> tuple[float, float]:
    """User and system time of a server and every worker it started."""
    try:
        root = psutil.Process(proc.pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, 0.0
    user = system = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        user, system = user + t.user, system + t.system
    return user, system


def check_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        sys.exit(
            f"missing {', '.join(missing)}: `make bench-predict` installs wrk "
            "(apt-get install wrk); taskset is in util-linux"
        )


def scoring_floor(settings: Settings, rows: list[dict[str, Any]], n: int = 3000) -> float:
    """Median seconds to score one row on the path the server uses (compiled when it can)."""
    engine = make_engine(settings)
    with transaction(session_factory(engine)) as session:
        _m, version = registry.get_version(session=session, name="credit", version=1)
    engine.dispose()
    model = ModelCache(ArtifactStore(settings.artifacts), 1).get("credit", version)
    for row in rows[:200]:
        model.scores([row])
    times = []
    for i in range(n):
        row = rows[i % len(rows)]
        started = time.perf_counter()
        model.scores([row])
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def pinned(cpu: str | None, nice: int = 0) -> list[str]:
    prefix = ["taskset", "-c", cpu] if cpu is not None else []
    return (["nice", "-n", str(nice)] if nice else []) + prefix


def start_govern(settings: Settings, key: str, bodies: Path, workers: int) -> Server:
    """One worker pinned to the server's core; more, on every core."""
    proc, port = serving_bench.start_govern(
        settings,
        # Each worker writes its bytecode once, instead of compiling every module on each start.
        {"PYTHONDONTWRITEBYTECODE": ""},
        workers=workers,
        prefix=pinned(SERVER_CPU if workers == 1 else None),
    )
    _wait_idle(proc)
    return Server(
        name=f"govern ({settings.database_url.split(':')[0]}, {workers} worker"
        + ("s" if workers > 1 else "")
        + ")",
        proc=proc,
        url=f"http://127.0.0.1:{port}/api/v1/endpoints/credit/predict",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        bodies=bodies,
        decisions=lambda: count_decisions(settings),
    )


def start_mlserver(base: Path, settings: Settings, bodies: Path) -> Server:
    """MLServer with inference in its one process, pinned to the server's core."""
    mlserver = ensure_mlserver(Path(os.environ.get("GOV_BENCH_CACHE", base)))
    root, port = mlserver_repository(base, settings, parallel_workers=0)
    proc = subprocess.Popen(
        [*pinned(SERVER_CPU), str(mlserver), "start", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/v2/models/credit/ready")
    except BaseException:
        stop(proc)
        raise
    _wait_idle(proc)
    return Server(
        name="MLServer 1.7.1 (1 worker)",
        proc=proc,
        url=f"http://127.0.0.1:{port}/v2/models/credit/infer",
        headers={"Content-Type": "application/json"},
        bodies=bodies,
    )


def _wait_idle(proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Until the server's processes use under 5% of a core for 2 s (background imports done)."""
    deadline = time.monotonic() + timeout
    quiet, before = 0, sum(cpu_times(proc))
    while time.monotonic() < deadline and quiet < 4:
        time.sleep(0.5)
        now = sum(cpu_times(proc))
        quiet = quiet + 1 if now - before < 0.025 else 0
        before = now


@contextmanager
def counted(server: Server, point: Point) -> Iterator[None]:
    user, system = server.cpu_seconds()
    yield
    user_after, system_after = server.cpu_seconds()
    point.server_cpu_s = (user_after - user) + (system_after - system)
    point.server_sys_s = system_after - system


def wrk(
    server: Server,
    point: Point,
    connections: int,
    client: list[str],
    mean_gap_ms: float = 0.0,
) -> Point:
    """Run ``wrk`` (``bench/wrk_bodies.lua``) against ``server`` and fill ``point`` in."""
    headers = [a for k, v in server.headers.items() for a in ("-H", f"{k}: {v}")]
    command = [
        *client,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{point.seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        *headers,
        server.url,
        "--",
        str(server.bodies),
        f"{mean_gap_ms:g}",
    ]
    with counted(server, point):
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    statuses = {int(c): int(n) for c, n in re.findall(r"^status (\d+) (\d+)$", out, re.M)}
    latency = {
        float(p): int(us) / 1000 for p, us in re.findall(r"^latency_us ([\d.]+) (\d+)$", out, re.M)
    }
    errors = [int(n) for n in re.findall(r"^errors (\d+) (\d+) (\d+) (\d+) (\d+)$", out, re.M)[0]]
    point.ok = statuses.pop(200, 0)
    point.shed = statuses.pop(503, 0)
    point.other = sum(statuses.values()) + errors[0] + errors[1] + errors[2] + errors[4]
    point.answered_rps = point.ok / point.seconds
    point.p50_ms, point.p99_ms = latency[50.0], latency[99.0]
    point.detail = {"connections": connections, "p90_ms": latency[90.0], "p999_ms": latency[99.9]}
    return point


def closed_loop(server: Server, seconds: float, connections: int, client: list[str]) -> Point:
    """As fast as ``connections`` connections go, each sending when the last is answered."""
    return wrk(server, Point("closed loop", None, seconds), connections, client)


def fixed_rate(server: Server, rate: float, seconds: float, client: list[str]) -> Point:
    """About ``rate`` requests/s in Poisson arrivals: 32 connections, each waiting an
    exponential gap (mean 32 / rate) before each request."""
    connections = 32
    point = Point(f"{rate:g} req/s", rate, seconds)
    return wrk(server, point, connections, client, mean_gap_ms=connections / rate * 1000)


def drive(
    server: Server, seconds: float, rates: list[float], client: list[str], repeats: int = 3
) -> dict[str, Any]:
    """A warm-up, the closed loop ``repeats`` times (the median run by throughput is reported,
    with every run's figure: this machine's runs differ by 15% and more), then each rate."""
    before = server.decisions() if server.decisions else 0
    warm = closed_loop(server, 3, 8, client)
    runs = sorted(
        (closed_loop(server, seconds, 8, client) for _ in range(repeats)),
        key=lambda p: p.answered_rps,
    )
    median = runs[len(runs) // 2]
    median.detail["runs_rps"] = [round(p.answered_rps, 1) for p in runs]
    median.detail["runs_cpu_ms_per_decision"] = [round(p.cpu_ms_per_decision, 3) for p in runs]
    points = [median]
    points += [fixed_rate(server, rate, seconds, client) for rate in rates]
    holding = [
        p.offered_rps
        for p in points[1:]
        if p.offered_rps and p.p99_ms <= P99_TARGET_MS and not p.shed and not p.other
    ]
    result: dict[str, Any] = {
        "server": server.name,
        "points": [_plain(p) for p in points],
        "highest_rate_p99_within_10ms": max(holding) if holding else None,
    }
    if server.decisions is not None:
        logged = server.decisions() - before
        every = [warm, *runs, *points[1:]]
        answered = sum(p.ok for p in every)
        in_flight = sum(p.detail["connections"] for p in every)
        result.update(
            decisions_logged=logged,
            answered_200=answered,
            log_holds_every_200=0 <= logged - answered <= in_flight,
        )
    return result


def _plain(point: Point) -> dict[str, Any]:
    return {
        "phase": point.name,
        "answered_rps": round(point.answered_rps, 1),
        "ok": point.ok,
        "shed_503": point.shed,
        "other": point.other,
        "p50_ms": round(point.p50_ms, 2),
        "p99_ms": round(point.p99_ms, 2),
        "server_cpu_ms_per_decision": round(point.cpu_ms_per_decision, 3),
        "of_which_kernel_ms": round(point.server_sys_s * 1000 / point.ok, 3) if point.ok else None,
        **point.detail,
    }


def profile(server: Server, seconds: float, out: Path, client: list[str]) -> Path:
    """py-spy samples the server's worker under closed-loop load; collapsed stacks to ``out``."""
    target = psutil.Process(server.proc.pid)
    workers = target.children(recursive=False) or [target]
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out.parent.mkdir(parents=True, exist_ok=True)
    recorder = subprocess.Popen(
        [
            *pinned(CLIENT_CPU),
            spy,
            "record",
            "-p",
            str(workers[0].pid),
            "-d",
            f"{seconds:g}",
            "-r",
            "200",
            "-f",
            "raw",
            "-o",
            str(out),
            "--nonblocking",
            "--threads",
            "--gil",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)
    closed_loop(server, seconds, 8, client)
    recorder.wait(60)
    return out


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rates", default="50,60,100,150,200")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-mlserver", action="store_true")
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="closed-loop runs per server")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "GOV_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    return parser.parse_args()


Target = tuple[str, Callable[[], Server], list[str]]


def _targets(
    args: argparse.Namespace, base: Path, rows: list[dict[str, Any]]
) -> tuple[list[Target], Settings, Callable[[], None] | None]:
    """The servers to measure, in order, each with the prefix its load generator runs under."""
    client = pinned(CLIENT_CPU)
    workers = [int(w) for w in args.workers.split(",") if w]
    govern_bodies = base / "govern.jsonl"
    govern_bodies.write_text("\n".join(govern_body(r, i).decode() for i, r in enumerate(rows)))
    ml_bodies = base / "mlserver.jsonl"
    ml_bodies.write_text("\n".join(mlserver_body(r).decode() for r in rows))
    sqlite = Settings(var_dir=base / "sqlite", environment="test")
    key = prepare(sqlite)
    targets: list[Target] = []
    if not args.no_mlserver:
        targets.append(("mlserver", lambda: start_mlserver(base, sqlite, ml_bodies), client))
    if 1 in workers:
        targets.append(("sqlite-1", lambda: start_govern(sqlite, key, govern_bodies, 1), client))
    drop = None
    backends = [("sqlite", sqlite, key)]
    if not args.no_postgres:
        url, drop = pg_database(args.pg_url)
        pg = Settings(var_dir=base / "pg", database_url=url, environment="test")
        backends.append(("pg", pg, prepare(pg)))
        if 1 in workers:
            targets.append(
                ("pg-1", partial(start_govern, pg, backends[1][2], govern_bodies, 1), client)
            )
    for n in (w for w in workers if w > 1):
        for label, settings, secret in backends:
            # Both cores serve; the generator runs beside them at the lowest priority.
            start = partial(start_govern, settings, secret, govern_bodies, n)
            targets.append((f"{label}-{n}", start, pinned(None, 19)))
    return targets, sqlite, drop


def _summary(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's ratios, from the runs of this one invocation."""

    def closed(name: str) -> float | None:
        run = runs.get(name)
        return run["points"][0]["answered_rps"] if run else None

    def p99_at(name: str, rate: float) -> float | None:
        for point in (runs.get(name) or {}).get("points", []):
            if point["phase"] == f"{rate:g} req/s":
                return float(point["p99_ms"])
        return None

    summary: dict[str, Any] = {}
    ml, one = closed("mlserver"), closed("sqlite-1")
    if ml and one:
        summary["throughput_sqlite_1_worker_over_mlserver"] = round(one / ml, 2)
    for name in runs:
        label, _, n = name.partition("-")
        single = closed(f"{label}-1")
        if label in ("sqlite", "pg") and n != "1" and single:
            summary[f"throughput_{name}_workers_over_1"] = round((closed(name) or 0) / single, 2)
    for rate in (60, 50):
        sqlite_p99, pg_p99 = p99_at("sqlite-1", rate), p99_at("pg-1", rate)
        if sqlite_p99 and pg_p99:
            summary[f"p99_sqlite_over_postgres_at_{rate}rps"] = round(sqlite_p99 / pg_p99, 2)
            break
    return summary


def main() -> None:
    args = _arguments()
    check_tools()
    rates = [float(r) for r in args.rates.split(",") if r]
    rows = applicants(1000)
    results: dict[str, Any] = {"seconds": args.seconds, "load_before": os.getloadavg()[0]}
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        targets, sqlite, drop = _targets(args, Path(tmp), rows)
        floor = scoring_floor(sqlite, rows)
        results["compiled_scoring_ms_per_row"] = round(floor * 1000, 3)
        print(f"compiled scoring: {floor * 1000:.3f} ms per row", flush=True)
        try:
            for name, start, client_prefix in targets:
                server = start()
                print(f"{server.name} ...", flush=True)
                try:
                    if args.profile is not None and name == "sqlite-1":
                        stacks = profile(
                            server, args.seconds, args.profile / "govern-sqlite.txt", client_prefix
                        )
                        results["profile"] = str(stacks)
                        print(table(stacks), flush=True)
                    run = drive(server, args.seconds, rates, client_prefix, args.repeats)
                finally:
                    stop(server.proc)
                run["cpu_per_decision_over_scoring"] = round(
                    run["points"][0]["server_cpu_ms_per_decision"] / (floor * 1000), 2
                )
                runs[name] = run
                print(json.dumps(run, indent=1), flush=True)
        finally:
            if drop is not None:
                drop()
    results["runs"] = runs
    results["summary"] = _summary(runs)
    results["load_after"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
