"""What out-of-distribution scoring adds to predict: the same service with scoring on and off.

Two govern servers (uvicorn, one worker each) on the same database and the same demo model,
one with ``GOV_OOD_SCORING=true`` (the default) and one with it off. One client sends requests
one at a time (no queueing), alternating between the two servers in blocks of ``--block``
requests, so drift in the machine's load hits both alike. Reported: p50/p90 of each and the p50
difference; the same with both servers scoring (an A/A run: the difference two identical
servers show on this machine, the noise floor of the A/B figure); the time predict spent
scoring, from the scoring server's own ``govern_ood_scoring_seconds`` histogram; and, in
process, the detector's cost for one row beside bare scikit-learn ``predict_proba`` for one
row (the baseline).

    uv run python -m bench.ood [--rounds 40] [--block 50] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.serving import (
    Connection,
    _pct,
    _send,
    applicants,
    encode_requests,
    govern_body,
    pg_database,
    prepare,
    start_govern,
    stop,
)
from core.config import Settings
from core.db import make_engine, session_factory, transaction
from lineage import registry
from lineage.artifacts import ArtifactStore
from lineage.input_schema import InputSchema, positive_proba, to_frame
from lineage.outliers import detector_of


async def _block(host: str, port: int, raws: list[bytes], pool: list[Connection]) -> list[float]:
    latencies = []
    for raw in raws:
        started = time.perf_counter()
        status = await _send(pool, host, port, raw)
        latencies.append(time.perf_counter() - started)
        if status != 200:
            raise SystemExit(f"predict answered {status}")
    return latencies


def _scoring_seconds(port: int) -> tuple[float, float]:
    """(sum, count) of govern_ood_scoring_seconds on one server."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    values = {}
    for line in text.splitlines():
        for name in ("govern_ood_scoring_seconds_sum", "govern_ood_scoring_seconds_count"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    return values.get("govern_ood_scoring_seconds_sum", 0.0), values.get(
        "govern_ood_scoring_seconds_count", 0.0
    )


def served(
    settings: Settings, key: str, bodies: list[bytes], rounds: int, block: int, off: str = "false"
) -> Any:
    procs = {}
    try:
        for name, flag in (("scoring_on", "true"), ("scoring_off", off)):
            procs[name] = start_govern(settings, {"GOV_OOD_SCORING": flag})
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        targets = {}
        for name, (_proc, port) in procs.items():
            url = f"http://127.0.0.1:{port}/api/v1/endpoints/credit/predict"
            targets[name] = encode_requests(url, headers, bodies)
        latencies: dict[str, list[float]] = {name: [] for name in targets}

        async def run() -> None:
            pools: dict[str, list[Connection]] = {name: [] for name in targets}
            for name, (host, port, raws) in targets.items():  # warm-up, not counted
                await _block(host, port, raws[:100], pools[name])
            for r in range(rounds):
                order = list(targets) if r % 2 == 0 else list(reversed(targets))
                for name in order:
                    host, port, raws = targets[name]
                    chunk = [raws[(r * block + i) % len(raws)] for i in range(block)]
                    latencies[name] += await _block(host, port, chunk, pools[name])
            for pool in pools.values():
                for conn in pool:
                    conn.close()

        asyncio.run(run())
        total, count = _scoring_seconds(procs["scoring_on"][1])
    finally:
        for proc, _port in procs.values():
            stop(proc)
    result: dict[str, Any] = {
        name: {"n": len(values), "p50_ms": _pct(values, 50), "p90_ms": _pct(values, 90)}
        for name, values in latencies.items()
    }
    on, off = result["scoring_on"]["p50_ms"], result["scoring_off"]["p50_ms"]
    result["added_p50_ms"] = on - off
    result["p50_ratio_on_to_off"] = on / off
    result["in_service_scoring_mean_ms"] = 1000 * total / count if count else None
    result["in_service_scoring_calls"] = count
    return result


def in_process(settings: Settings, rows: list[dict[str, Any]], repeats: int) -> dict[str, Any]:
    engine = make_engine(settings)
    with transaction(session_factory(engine)) as session:
        _m, version = registry.get_version(session=session, name="credit", version=1)
        schema = InputSchema.from_document(version.input_schema)
        lineage = version.lineage
        pipeline = ArtifactStore(settings.artifacts).load_model(version.artifact_sha256)
    engine.dispose()
    detector = detector_of(lineage)
    assert detector is not None, "the demo model has no detector in its lineage"

    def per_call(fn: Any) -> float:
        timings = []
        for i in range(repeats):
            row = rows[i % len(rows)]
            started = time.perf_counter()
            fn(row)
            timings.append(time.perf_counter() - started)
        return _pct(timings, 50)

    detector_ms = per_call(lambda row: detector.scores([row]))
    sklearn_ms = per_call(lambda row: positive_proba(pipeline, to_frame(schema, [row]), schema))
    return {
        "detector_one_row_p50_ms": detector_ms,
        "bare_sklearn_one_row_p50_ms": sklearn_ms,
        "detector_to_sklearn_ratio": detector_ms / sklearn_ms,
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "GOV_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    rows = applicants(1000)
    bodies = [govern_body(r, i) for i, r in enumerate(rows)]
    results: dict[str, Any] = {"rounds": args.rounds, "block": args.block}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        sqlite = Settings(var_dir=base / "sqlite", environment="test")
        key = prepare(sqlite)
        print("in process ...", flush=True)
        results["in_process"] = in_process(sqlite, rows, 5000)
        print("govern on SQLite, scoring on and off ...", flush=True)
        results["sqlite"] = served(sqlite, key, bodies, args.rounds, args.block)
        print("govern on SQLite, both scoring (A/A noise floor) ...", flush=True)
        results["sqlite_a_a"] = served(sqlite, key, bodies, args.rounds, args.block, off="true")
        if not args.no_postgres:
            url, drop = pg_database(args.pg_url)
            try:
                pg = Settings(var_dir=base / "pg", database_url=url, environment="test")
                pg_key = prepare(pg)
                print("govern on PostgreSQL, scoring on and off ...", flush=True)
                results["postgres"] = served(pg, pg_key, bodies, args.rounds, args.block)
            finally:
                drop()
    print(json.dumps(results, indent=2, default=lambda v: round(v, 4)))


if __name__ == "__main__":
    main()
