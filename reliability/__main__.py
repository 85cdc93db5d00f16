"""``python -m reliability``: run the drills and write RELIABILITY.md.

    python -m reliability [--profile full|ci|quick] [--only crash,outage,...] [--out RELIABILITY.md]

Exit 0 only when every scenario passed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench.serving import free_port
from reliability import report, scenarios
from reliability.cluster import Cluster
from reliability.world import World, build

Scenario = Callable[[World, scenarios.Profile, Path, str], report.Row]


def _registry() -> dict[str, Scenario]:
    from reliability import attack, fuzz, hostile, tamper

    return {
        "crash": scenarios.crash,
        "outage": scenarios.outage,
        "concurrency": scenarios.concurrency,
        "fuzz": fuzz.run,
        "hostile": hostile.run,
        "tamper": tamper.run,
        "attack": attack.run,
    }


def main(argv: list[str] | None = None) -> int:
    registry = _registry()
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument("--profile", choices=sorted(scenarios.PROFILES), default="full")
    parser.add_argument(
        "--only",
        default=",".join(registry),
        help="comma-separated scenarios (default: all, in order)",
    )
    parser.add_argument("--out", type=Path, default=Path("RELIABILITY.md"))
    parser.add_argument("--keep", action="store_true", help="keep the cluster and logs")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(registry))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(registry)}")
    profile = scenarios.PROFILES[args.profile]
    command = f"make reliability RELIABILITY_PROFILE={profile.name}"
    if chosen != list(registry):
        command = f"python -m reliability --profile {profile.name} --only {','.join(chosen)}"

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="govern-reliability-"))
    logs = work / "logs"
    logs.mkdir()
    cluster = Cluster(free_port())
    rows: list[report.Row] = []
    try:
        print(
            f"reliability: PostgreSQL cluster on port {cluster.port} ({cluster.root})", flush=True
        )
        cluster.init()
        print(
            "reliability: building the world (migrate, train credit v1 and v2, endpoints, keys)",
            flush=True,
        )
        world = build(cluster, work / "var")
        for name in chosen:
            print(f"reliability: {name} ...", flush=True)
            began = time.monotonic()
            # The command that reproduces this row alone.
            row_command = f"uv run python -m reliability --profile {profile.name} --only {name}"
            try:
                row = registry[name](world, profile, logs, row_command)
            except Exception as exc:  # a drill that breaks is a failed row, not a lost report
                traceback.print_exc()
                row = report.Row(
                    scenario=name,
                    load="-",
                    faults="-",
                    requests="-",
                    ok_200="-",
                    logged="-",
                    lost="-",
                    chain="-",
                    passed=False,
                    command=row_command,
                    findings=[f"The drill itself failed: {type(exc).__name__}: {exc}"],
                )
            rows.append(row)
            print(
                f"reliability: {name} {'passed' if row.passed else 'FAILED'} in "
                f"{time.monotonic() - began:.0f} s",
                flush=True,
            )
            for finding in row.findings:
                print(f"  - {finding}", flush=True)
        (logs / "details.json").write_text(
            json.dumps({r.scenario: r.detail for r in rows}, indent=2, default=str)
        )
    finally:
        if not args.keep:
            cluster.destroy()
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"reliability: kept {work} and {cluster.root}")
    elapsed = time.monotonic() - started
    notes = _notes(profile)
    report.write(args.out, report.render(rows, command, profile.name, elapsed, notes))
    ok = all(r.passed for r in rows)
    print(
        f"reliability: wrote {args.out}; {sum(r.passed for r in rows)}/{len(rows)} passed "
        f"in {elapsed:.0f} s",
        flush=True,
    )
    return 0 if ok else 1


def _notes(profile: scenarios.Profile) -> list[str]:
    return [
        "The drills run on a private PostgreSQL 15 cluster (the machine's own binaries, a fresh "
        "data directory and a free port), not on the shared server at 127.0.0.1:5432: the "
        "outage drill stops the database server, and stopping the shared one would break "
        "everything else that uses it.",
        "Each scenario gets its own copy of one template database (CREATE DATABASE ... TEMPLATE), "
        "so no drill's faults or tampering reach another's figures.",
        f"Profile `{profile.name}`: crash {profile.crash_rate:.0f} req/s for "
        f"{profile.crash_seconds:.0f} s; outage {profile.outage_rate:.0f} req/s for "
        f"{profile.outage_seconds:.0f} s; concurrency {profile.concurrency_decisions:,} "
        f"decisions; fuzzing {profile.fuzz_examples} examples per operation, role and mode; "
        f"attack {profile.attack_rate:.0f} honest predicts/s for {profile.attack_seconds:.0f} s "
        "alone, then as long under attack.",
        "Known limitation: a restarted server is unreachable until its workers have imported "
        "their libraries and loaded their models (the crash row gives the time); clients get "
        "connection errors then, and must retry. Nothing is decided in that window.",
        "By design, not a defect: while a process is behind (a worker restarting, the database "
        "just back), predict sheds load with 503 `overloaded` and Retry-After instead of "
        "queueing; those requests decide nothing and log nothing.",
        "The drills cover PostgreSQL only. The embedded SQLite database cannot go away on its "
        "own, and several writer processes on one SQLite file serialize on its lock; the test "
        "suite covers SQLite's logging, chain and fail-closed behaviour.",
        "The fourth tampering (a consistent rewrite) is caught only because the signed "
        "checkpoint was exported off the database host: an attacker who can rewrite the chain "
        "can also delete the checkpoints stored in the database, as this drill does.",
        "Hostile input includes the attacks of issue 16's review, each sent over HTTP to the "
        "live server, with checks beyond the status: the code-running skops upload writes no "
        "file; alias bombs and 200 MB bodies without a key are answered from the headers, "
        "before their body is sent; dataset URLs naming a local listener make no connection; "
        "the .dvc md5 traversal echoes nothing of the file; made-up endpoint names and keys add "
        "no /metrics label; every refused predict is logged as a rejection (not a decision) "
        "with a bounded summary; CSV cells starting like formulas are neutralised.",
        "The attack drill measures one server with one continuous honest run, in two windows "
        "of equal length: alone, then under attack. It passes only if honest p99 under attack "
        "is at most twice the baseline's, nothing is lost, every honest request is answered "
        "200, every unauthenticated attack is answered 401 before its body is sent, and the "
        "workers' RSS grows by at most 100 MB. The attackers run in a process of their own, so "
        "their work does not delay the honest client's clock; the run starts once the workers "
        "are idle (a new worker imports the explanation libraries in the background for "
        "several seconds), and its first seconds are not counted, so the client is warm in "
        "both windows. The server, PostgreSQL, the honest client and the attackers share the "
        "machine's 2 cores, and p99 of 800 requests is their 8th slowest: the ratio carries "
        "some machine noise, which the row's CPU figures and slowest requests help to tell "
        "from the attack's cost.",
    ]


if __name__ == "__main__":
    sys.exit(main())
