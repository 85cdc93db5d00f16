"""Crash under load, database outage, and concurrency: the durability drills."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from reliability.load import Fault, Sent, drive, drive_closed, logged, reconcile
from reliability.report import Row, counts
from reliability.server import Server
from reliability.world import ENDPOINTS, World, scalar


@dataclass(frozen=True)
class Profile:
    """How hard each drill pushes. ``full`` is the published run (``make reliability``); ``ci`` a
    smaller seeded one; ``quick`` (what ``.ci/run`` runs) every drill with all its faults at the
    smallest size that still exercises them: the crash's restart before the load ends, readiness
    probes while the database is down, a baseline window of a few hundred honest predicts."""

    name: str
    crash_rate: float  # requests/s
    crash_seconds: float
    outage_rate: float
    outage_seconds: float
    concurrency_decisions: int
    fuzz_examples: int  # per operation, role and generation mode
    attack_rate: float  # honest predicts/s, in each of the attack drill's two phases
    attack_seconds: float  # each phase's length


PROFILES = {
    "full": Profile("full", 40, 40, 30, 36, 20_000, 12, 40, 20),
    "ci": Profile("ci", 30, 24, 25, 27, 6_000, 4, 40, 20),
    # The attack drill keeps full length in every profile: its bar is a ratio of two p99s, and
    # 12 s phases (480 honest predicts) left p99 to its five slowest requests: 2.04x on one CI run.
    "quick": Profile("quick", 20, 24, 20, 20, 2_000, 2, 40, 20),
}


def _chain(report: dict[str, Any]) -> str:
    if report["ok"]:
        heads = ", ".join(f"{c['chain']} {c['records_checked']}" for c in report["chains"])
        return f"yes ({heads})"
    bad = [c for c in report["chains"] if not c["ok"]]
    return "NO: " + "; ".join(f"{c['chain']} at {c['first_problem']['seq']}" for c in bad)


def _failures(rec: dict[str, Any]) -> str:
    if not rec["failures"]:
        return "none"
    return ", ".join(f"{n} x {kind}" for kind, n in sorted(rec["failures"].items()))


def crash(world: World, profile: Profile, logs: Path, command: str) -> Row:
    """Steady predict load; SIGKILL one worker, later the whole server; restart; reconcile."""
    url = world.database("crash")
    server = Server(world.env(url), workers=2, log=logs / "crash.log")
    server.start()
    total = int(profile.crash_rate * profile.crash_seconds)
    plan = [("credit", [f"crash-{i}"]) for i in range(total)]
    events: dict[str, Any] = {}

    async def kill_worker() -> None:
        events["killed_worker"] = await asyncio.to_thread(server.kill_worker)

    async def kill_server() -> None:
        server.kill_all()
        started = time.monotonic()
        await asyncio.to_thread(server.start)
        events["restart_s"] = time.monotonic() - started

    t = profile.crash_seconds
    faults = [
        Fault(0.3 * t, "kill -9 one worker", kill_worker),
        Fault(0.6 * t, "kill -9 the server, then restart", kill_server),
    ]
    try:
        sent = asyncio.run(
            drive(
                server.base,
                world.keys["predictor"],
                plan,
                world.applicants,
                profile.crash_rate,
                faults,
            )
        )
    finally:
        server.stop()
    rec = reconcile(sent, logged(url, "crash-"))
    report = world.verify(url)
    in_flight = rec["requests"] - rec["ok_200"]
    passed = rec["lost"] == 0 and report["ok"]
    return Row(
        scenario="1. Crash under load",
        load=f"{profile.crash_rate:.0f} req/s for {t:.0f} s, 2 workers",
        faults=f"kill -9 a worker at {0.3 * t:.0f} s; kill -9 the whole server at {0.6 * t:.0f} s, restart",
        **counts(rec),
        chain=_chain(report),
        passed=passed,
        command=command,
        findings=[
            f"Every one of the {rec['ok_200']} decisions answered 200 is in the log with the same "
            f"decision id, label and score: {rec['lost']} lost or different."
            + (f" Examples: {rec['lost_examples']}" if rec["lost"] else ""),
            f"Requests that failed on the client side: {in_flight} ({_failures(rec)}); they were "
            "in flight at a kill, or sent while the server was down.",
            f"Logged decisions the client never saw (committed, then the process died before "
            f"answering): {rec['unseen_logged']}.",
            f"The killed worker (pid {events.get('killed_worker')}) was replaced by uvicorn; the "
            f"whole server came back in {events.get('restart_s', float('nan')):.1f} s.",
            f"`govern audit verify`: exit {report['exit_code']}.",
        ],
        detail={"reconcile": rec, "events": events},
    )


def outage(world: World, profile: Profile, logs: Path, command: str) -> Row:
    """Stop PostgreSQL under load, start it again; govern must fail closed, then recover alone."""
    url = world.database("outage")
    server = Server(
        world.env(url, GOV_DB_CONNECT_TIMEOUT_S="2"), workers=2, log=logs / "outage.log"
    )
    server.start()
    t = profile.outage_seconds
    total = int(profile.outage_rate * t)
    plan = [("credit", [f"outage-{i}"]) for i in range(total)]
    marks: dict[str, float] = {}
    ready: list[tuple[float, int | None]] = []
    started = time.monotonic()

    async def down() -> None:
        marks["stop_begin"] = time.monotonic() - started
        await asyncio.to_thread(world.cluster.stop, "fast")
        marks["down"] = time.monotonic() - started

    async def up() -> None:
        marks["start_begin"] = time.monotonic() - started
        await asyncio.to_thread(world.cluster.start)
        marks["up"] = time.monotonic() - started

    async def probe_readyz() -> None:
        async with httpx.AsyncClient(base_url=server.base) as client:
            while time.monotonic() - started < t + 15:
                try:
                    status: int | None = (await client.get("/readyz", timeout=5)).status_code
                except httpx.HTTPError:
                    status = None
                ready.append((time.monotonic() - started, status))
                await asyncio.sleep(0.5)

    async def run() -> list[Sent]:
        probe = asyncio.create_task(probe_readyz())
        out = await drive(
            server.base,
            world.keys["predictor"],
            plan,
            world.applicants,
            profile.outage_rate,
            [Fault(0.3 * t, "stop PostgreSQL", down), Fault(0.55 * t, "start PostgreSQL", up)],
        )
        # After the load: predict must work again without restarting govern.
        after = await drive(
            server.base,
            world.keys["predictor"],
            [("credit", [f"outage-after-{i}"]) for i in range(20)],
            world.applicants,
            10,
        )
        await probe
        return out + after

    try:
        # The load's own clock starts inside drive; both clocks start within a few ms.
        sent = asyncio.run(run())
    finally:
        server.stop()
        if not world.cluster.running():
            world.cluster.start()
    rec = reconcile(sent, logged(url, "outage-"))
    report = world.verify(url)
    down_at, up_at = marks["down"], marks["start_begin"]
    during = [s for s in sent if s.done is not None and down_at <= s.at and s.done <= up_at]
    ok_while_down = sum(1 for s in during if s.status == 200)
    codes_while_down = sorted({str(s.status or s.error) for s in during})
    ready_down = [st for at, st in ready if down_at + 0.5 <= at <= up_at]
    first_ok_after = min(
        (s.done for s in sent if s.status == 200 and s.done is not None and s.at >= marks["up"]),
        default=None,
    )
    ready_after = [st for at, st in ready if at >= marks["up"]]
    recovered = first_ok_after is not None and ready_after[-1:] == [200]
    passed = (
        rec["lost"] == 0
        and ok_while_down == 0
        and report["ok"]
        and recovered
        and bool(ready_down)
        and all(st == 503 for st in ready_down)
    )
    recovery = f"{first_ok_after - marks['up']:.2f} s" if first_ok_after is not None else "never"
    return Row(
        scenario="2. Database outage",
        load=f"{profile.outage_rate:.0f} req/s for {t:.0f} s, 2 workers",
        faults=f"PostgreSQL stopped (fast) at {marks['stop_begin']:.0f} s, started at "
        f"{up_at:.0f} s",
        **counts(rec),
        chain=_chain(report),
        passed=passed,
        command=command,
        findings=[
            f"While PostgreSQL was down ({up_at - down_at:.1f} s): {len(during)} predict "
            f"requests, {ok_while_down} answered 200; answers: {', '.join(codes_while_down)}.",
            f"/readyz while down: {len(ready_down)} probes, "
            f"{sum(1 for s in ready_down if s == 503)} answered 503; after the restart it answered "
            f"{ready_after[-1] if ready_after else 'nothing'}.",
            f"govern recovered without a restart: the first 200 came {recovery} after PostgreSQL "
            "was back.",
            f"{rec['lost']} answered decisions missing from the log; {rec['unseen_logged']} logged "
            f"decisions the client never saw. Client-side failures: {_failures(rec)}.",
            f"`govern audit verify`: exit {report['exit_code']}.",
        ],
        detail={"reconcile": rec, "marks": marks, "readyz": ready},
    )


def concurrency(world: World, profile: Profile, logs: Path, command: str) -> Row:
    """Four workers, many decisions over four endpoints (canary, shadow, sticky A/B)."""
    url = world.database("concurrency")
    server = Server(world.env(url), workers=4, log=logs / "concurrency.log")
    server.start()
    names = list(ENDPOINTS)
    plan: list[tuple[str, list[str]]] = []
    made = 0
    i = 0
    while made < profile.concurrency_decisions:
        size = 10 if (i // len(names)) % 2 else 1  # every endpoint: singles and batches of ten
        size = min(size, profile.concurrency_decisions - made)
        plan.append((names[i % len(names)], [f"conc-{made + j}" for j in range(size)]))
        made += size
        i += 1
    started = time.monotonic()
    reads: Counter[int] = Counter()

    async def load() -> list[Sent]:
        """Predict load, with compliance reads of logged decisions running beside it: each read
        appends to the access chain, so both chains take concurrent appends from every worker."""
        done = asyncio.Event()
        answered: list[str] = []

        async def reader() -> None:
            headers = {"Authorization": f"Bearer {world.keys['compliance']}"}
            async with httpx.AsyncClient(base_url=server.base, headers=headers) as client:
                i = 0
                while not done.is_set():
                    if not answered:
                        await asyncio.sleep(0.05)
                        continue
                    decision = answered[(i * 7919) % len(answered)]
                    i += 1
                    response = await client.get(f"/api/v1/decisions/{decision}", timeout=30)
                    reads[response.status_code] += 1

        async def collect() -> None:
            while not done.is_set():
                answered[:] = [d["decision_id"] for s in sent_so_far for d in s.decisions][-500:]
                await asyncio.sleep(0.5)

        sent_so_far: list[Sent] = []
        readers = [asyncio.create_task(reader()) for _ in range(2)]
        collector = asyncio.create_task(collect())
        try:
            out = await drive_closed(
                server.base,
                world.keys["predictor"],
                plan,
                world.applicants,
                concurrency=16,
                progress=sent_so_far,
            )
        finally:
            done.set()
            await asyncio.gather(*readers, collector)
        return out

    try:
        sent = asyncio.run(load())
        elapsed = time.monotonic() - started
        live_shadowed = sum(len(s.decisions) for s in sent if s.endpoint == "credit-shadow")
        shadows = _settle(url, live_shadowed)
    finally:
        server.stop()
    rec = reconcile(sent, logged(url, "conc-"))
    report = world.verify(url)
    seq = {}
    for chain, name in (("decision", "decision"), ("access", "access_log")):
        table = sa.table(name, sa.column("seq"))
        seq[chain] = tuple(
            scalar(url, sa.select(agg).select_from(table))
            for agg in (
                sa.func.count(),
                sa.func.coalesce(sa.func.max(table.c.seq), 0),
                sa.func.count(sa.distinct(table.c.seq)),
            )
        )
    gap_free = all(n == top == distinct for n, top, distinct in seq.values())
    trail_matches = seq["access"][0] == reads.get(200, 0)
    canary = [d for s in sent if s.endpoint == "credit-canary" for d in s.decisions]
    canary_share = sum(1 for d in canary if d["route"] == "canary") / max(1, len(canary))
    per_endpoint = {
        name: sum(len(s.decisions) for s in sent if s.endpoint == name) for name in names
    }
    passed = (
        trail_matches
        and not set(reads) - {200}
        and rec["lost"] == 0
        and rec["unseen_logged"] == 0
        and gap_free
        and report["ok"]
        and shadows == live_shadowed
    )
    return Row(
        scenario="3. Concurrency",
        load=f"{rec['decisions_answered']:,} decisions in {len(sent):,} requests (singles and "
        f"batches of 10), 16 clients, 4 workers, {elapsed:.0f} s",
        faults="none: contention only",
        **counts(rec),
        chain=_chain(report),
        passed=passed,
        command=command,
        findings=[
            f"Decisions per endpoint: {per_endpoint}; "
            f"{rec['decisions_answered'] / elapsed:.0f} decisions/s.",
            "Sequence numbers: "
            + "; ".join(
                f"{chain} {n:,} records, max seq {top:,}, {distinct:,} distinct"
                for chain, (n, top, distinct) in seq.items()
            )
            + (": gap-free and unique." if gap_free else ": GAPS OR DUPLICATES."),
            f"Shadow decisions logged: {shadows:,} for {live_shadowed:,} live decisions on "
            "credit-shadow.",
            f"Concurrent compliance reads of logged decisions: {sum(reads.values()):,} "
            f"({dict(reads)}); access-trail entries: {seq['access'][0]:,}"
            + (" (one per read)." if trail_matches else " (MISMATCH)."),
            f"Canary share on credit-canary: {canary_share:.1%} (configured 10%).",
            f"Non-200 answers: {_failures(rec)}; every 200 logged ({rec['lost']} lost), and no "
            f"logged decision unanswered ({rec['unseen_logged']}).",
            f"`govern audit verify`: exit {report['exit_code']}.",
        ],
        detail={"reconcile": rec, "sequences": seq},
    )


def _settle(url: str, expected: int, timeout: float = 60) -> int:
    """Shadow decisions are scored off the request path; wait for them to land."""
    started = time.monotonic()
    table = sa.table("decision", sa.column("parent_decision_id"))
    query = (
        sa.select(sa.func.count()).select_from(table).where(table.c.parent_decision_id.is_not(None))
    )
    found = scalar(url, query)
    while found < expected and time.monotonic() - started < timeout:
        time.sleep(0.5)
        found = scalar(url, query)
    return found
