"""Attack under load: does an attacker's traffic cost honest callers anything?

One server (2 workers), measured twice in the same run with the same honest traffic (open-loop
predicts at a fixed rate with the predictor key, and a /healthz probe every 100 ms): first alone
(the baseline), then while, from another process, unauthenticated YAML alias bombs go to
/api/v1/runs, unauthenticated 200 MB uploads go to the model upload route, and a second predictor
key holds trickling predict bodies open. The server must answer the unauthenticated attacks 401
from their headers, bound the trickling key (429 past its share, 408 at the body deadline), keep
its memory, and keep honest p99 within twice the baseline, with nothing lost from the log.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]

from core import heap
from reliability import attackers
from reliability.latency import AttackOutcome, Figures, failures, ratio
from reliability.load import Fault, Sent, body, drive, logged, reconcile
from reliability.report import Row, counts
from reliability.scenarios import Profile
from reliability.server import Server
from reliability.world import World

PREFIX = "attack-"
HEALTH_EVERY_S = 0.1
LEAD_IN_S = 5.0  # honest load before the baseline window: connections open, paths warm
MB = 1024 * 1024


@dataclass
class Phase:
    """One window of the honest traffic as the client saw it, and the workers meanwhile."""

    name: str
    start: float = 0.0  # seconds after the honest load began
    sent: list[Sent] = field(default_factory=list)
    health: list[tuple[float, int | None]] = field(default_factory=list)  # (ms, status)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds in, MB)
    cpu_s: float = 0.0  # CPU time the workers used during the phase
    client_cpu_s: float = 0.0  # CPU time the honest client (this process) used

    def slowest(self, n: int = 20) -> list[tuple[float, float, int | None]]:
        """The ``n`` slowest honest predicts: (seconds into the phase, ms, status)."""
        timed = [(s.at - self.start, (s.done - s.at) * 1000, s.status) for s in self.sent if s.done]
        return sorted(timed, key=lambda t: -t[1])[:n]

    @property
    def predict(self) -> Figures:
        return Figures.of(
            [(s.done - s.at) * 1000 for s in self.sent if s.status is not None and s.done]
        )

    @property
    def healthz(self) -> Figures:
        return Figures.of([ms for ms, status in self.health if status is not None])

    @property
    def failed(self) -> int:
        """Honest requests not answered 200: a 5xx, no answer at all, or a 429 (the attacker's
        key must never use up the honest key's share)."""
        predicts = sum(1 for s in self.sent if s.status != 200)
        probes = sum(1 for _, status in self.health if status != 200)
        return predicts + probes

    @property
    def rss_growth_mb(self) -> float:
        if not self.rss:
            return float("nan")
        return max(mb for _, mb in self.rss) - self.rss[0][1]


@dataclass(frozen=True)
class Sample:
    at: float  # seconds after the honest load began
    rss_mb: float  # the workers' resident memory
    cpu_s: float  # the workers' CPU time so far
    client_cpu_s: float  # this process's CPU time so far


@dataclass
class Timeline:
    """The whole honest run: every predict, every probe (at, ms, status), and the workers'
    memory and CPU every 250 ms. Phases are windows of it, so the client is warm in both."""

    sent: list[Sent] = field(default_factory=list)
    health: list[tuple[float, float, int | None]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    def phase(self, name: str, start: float, end: float) -> Phase:
        samples = [s for s in self.samples if start <= s.at < end]
        used = (samples[-1], samples[0]) if samples else None
        return Phase(
            name,
            start=start,
            sent=[s for s in self.sent if start <= s.at < end],
            health=[(ms, status) for at, ms, status in self.health if start <= at < end],
            rss=[(s.at - start, s.rss_mb) for s in samples],
            cpu_s=used[0].cpu_s - used[1].cpu_s if used else float("nan"),
            client_cpu_s=used[0].client_cpu_s - used[1].client_cpu_s if used else float("nan"),
        )


def _workers(server: Server) -> tuple[float, float]:
    """The workers' resident memory (MB) and the CPU time they have used (s), summed."""
    rss, cpu = 0, 0.0
    for pid in server.worker_pids():
        try:
            process = psutil.Process(pid)
            rss += process.memory_info().rss
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        cpu += times.user + times.system
    return rss / MB, cpu


def _wait_idle(server: Server, timeout: float = 120.0) -> float:
    """Seconds until the workers are idle (under 5% of a core for 2 s running): a worker that
    has just started still imports the explanation libraries in the background, and a baseline
    measured meanwhile would be that import's, not the server's."""
    started = time.monotonic()
    quiet = 0
    _, before = _workers(server)
    while time.monotonic() - started < timeout and quiet < 4:
        time.sleep(0.5)
        _, now = _workers(server)
        quiet = quiet + 1 if now - before < 0.5 * 0.05 else 0
        before = now
    return time.monotonic() - started


async def _measure(
    server: Server,
    key: str,
    applicants: list[dict[str, Any]],
    rate: float,
    seconds: float,
    faults: list[Fault],
) -> Timeline:
    """Honest predicts at ``rate`` for ``seconds``, a /healthz probe every 100 ms, and the
    workers' memory and CPU every 250 ms, all at once; ``faults`` fire at their times."""
    plan = [("credit", [f"{PREFIX}{i}"]) for i in range(int(rate * seconds))]
    timeline = Timeline()
    # This process built the world: its heap holds pandas, scikit-learn and govern, and one full
    # collection of it stopped the honest client for 226 ms in the middle of a baseline window
    # (seen as a 258 ms "slowest predict" the server never had). Freeze it for the measurement.
    heap.settle()
    started = time.monotonic()
    done = asyncio.Event()

    async def probe() -> None:
        async with httpx.AsyncClient(base_url=server.base) as client:
            i = 0
            while not done.is_set():
                began = time.monotonic()
                try:
                    status: int | None = (await client.get("/healthz", timeout=10)).status_code
                except httpx.HTTPError:
                    status = None
                now = time.monotonic()
                timeline.health.append((began - started, (now - began) * 1000, status))
                i += 1
                await asyncio.sleep(max(0.0, started + i * HEALTH_EVERY_S - now))

    async def sample() -> None:
        while not done.is_set():
            mb, cpu = await asyncio.to_thread(_workers, server)
            at = time.monotonic() - started
            timeline.samples.append(Sample(at, mb, cpu, time.process_time()))
            await asyncio.sleep(0.25)

    side = [asyncio.create_task(probe()), asyncio.create_task(sample())]
    try:
        timeline.sent = await drive(server.base, key, plan, applicants, rate, faults)
    finally:
        done.set()
        await asyncio.gather(*side)
        gc.unfreeze()
    return timeline


def _second_predictor(server: Server, admin: str) -> str:
    response = httpx.post(
        f"{server.base}/api/v1/keys",
        headers={"Authorization": f"Bearer {admin}"},
        json={"name": "attack drill: trickling predictor", "role": "predictor"},
        timeout=30,
    )
    response.raise_for_status()
    key: str = response.json()["key"]
    return key


def _attack_process(
    plan: attackers.AttackPlan,
) -> tuple[Any, Any, multiprocessing.process.BaseProcess]:
    context = multiprocessing.get_context("spawn")
    ready, go = context.Event(), context.Event()
    results: Any = context.Queue()
    process = context.Process(
        target=attackers.run, args=(plan, ready, go, results), name="attackers", daemon=True
    )
    process.start()
    if not ready.wait(120):
        process.kill()
        raise RuntimeError("the attackers' process did not start")
    return go, results, process


def run(world: World, profile: Profile, logs: Path, command: str) -> Row:
    url = world.database("attack")
    server = Server(world.env(url), workers=2, log=logs / "attack.log")
    rate, seconds = profile.attack_rate, profile.attack_seconds
    server.start()
    try:
        trickle_key = _second_predictor(server, world.keys["admin"])
        trickle_body = json.dumps(
            body([f"{PREFIX}trickle"], world.applicants[:1]), separators=(",", ":")
        ).encode()
        plan = attackers.AttackPlan(
            port=server.port, seconds=seconds, trickle_key=trickle_key, trickle_body=trickle_body
        )
        go, results, process = _attack_process(plan)
        marks: dict[str, float] = {}

        async def start_attack() -> None:
            marks["attack"] = time.monotonic()
            go.set()

        try:
            marks["idle_after_s"] = _wait_idle(server)
            # One honest run, warm from its lead-in on: the baseline window, then the attack.
            timeline = asyncio.run(
                _measure(
                    server,
                    world.keys["predictor"],
                    world.applicants,
                    rate,
                    LEAD_IN_S + 2 * seconds,
                    [Fault(LEAD_IN_S + seconds, "attack", start_attack)],
                )
            )
            attacked: dict[str, Any] = results.get(timeout=120)
            process.join(30)
        finally:
            if process.is_alive():
                process.kill()
    finally:
        server.stop()
    rec = reconcile(timeline.sent, logged(url, PREFIX))
    report = world.verify(url)
    measured = {
        "baseline": timeline.phase("baseline", LEAD_IN_S, LEAD_IN_S + seconds),
        "attack": timeline.phase("attack", LEAD_IN_S + seconds, LEAD_IN_S + 2 * seconds),
    }
    return _row(plan, rate, measured, attacked, rec, report, command, marks)


def _answers(items: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(a["status"]) if a["status"] is not None else "none" for a in items)


def _ms(items: list[dict[str, Any]]) -> Figures:
    return Figures.of([a["seconds"] * 1000 for a in items if a["seconds"] is not None])


def refused_unread(bombs: list[dict[str, Any]], uploads: list[dict[str, Any]]) -> int:
    """Unauthenticated attacks answered 401 before their body was sent; an upload, which went
    on sending after the answer, counts only if the server then closed its connection long
    before the 200 MB were in."""

    def answered(a: dict[str, Any]) -> bool:
        return a["status"] == 401 and bool(a["before_body"])

    def closed(a: dict[str, Any]) -> bool:
        return a["closed_s"] is not None and a["sent_total"] < a["declared"]

    return sum(1 for a in bombs if answered(a)) + sum(
        1 for a in uploads if answered(a) and closed(a)
    )


def _row(
    plan: attackers.AttackPlan,
    rate: float,
    measured: dict[str, Phase],
    attacked: dict[str, Any],
    rec: dict[str, Any],
    report: dict[str, Any],
    command: str,
    marks: dict[str, float],
) -> Row:
    baseline, attack = measured["baseline"], measured["attack"]
    bombs, uploads = attacked["bombs"], attacked["uploads"]
    outcome = AttackOutcome(
        baseline_p99_ms=baseline.predict.p99,
        attack_p99_ms=attack.predict.p99,
        lost=rec["lost"],
        honest_failures=baseline.failed + attack.failed,
        unauthenticated=len(bombs) + len(uploads),
        refused_unread=refused_unread(bombs, uploads),
        rss_growth_mb=attack.rss_growth_mb,
    )
    problems = failures(outcome)
    findings = _findings(plan, rate, measured, attacked, rec, report, marks["attack"])
    findings.insert(
        -1,
        f"One honest run, measured once the workers were idle ({marks['idle_after_s']:.0f} s "
        "after /readyz: a new worker imports the explanation libraries in the background): a "
        f"{LEAD_IN_S:.0f} s lead-in not counted, then the baseline window, then the attack's, "
        "so the honest client is warm in both.",
    )
    if problems:
        findings.append("FAILED: " + "; ".join(problems) + ".")
    trickles = attacked["trickles"]
    return Row(
        scenario="7. Attack under load",
        load=f"{rate:.0f} req/s honest predicts and /healthz every 100 ms, {plan.seconds:.0f} s "
        f"alone then {plan.seconds:.0f} s under attack, 2 workers",
        faults="unauthenticated 9-level YAML alias bombs (5/s) and 200 MB uploads; "
        f"{plan.trickle_connections} trickling predict bodies (1 byte/s) from a second "
        "predictor key",
        **counts(rec),
        chain="yes" if report["ok"] else "NO",
        passed=not problems and report["ok"],
        command=command,
        findings=findings,
        detail={
            "outcome": outcome.__dict__,
            "problems": problems,
            "baseline": _figures(baseline),
            "attack": _figures(attack),
            "attacks": {
                "bombs": _answers(bombs),
                "uploads": [
                    {**a, "at": a["began"] - marks["attack"], "body": None} for a in uploads
                ],
                "trickles": _answers(trickles),
                "trickle_408_at": sorted(
                    a["began"] + a["seconds"] - marks["attack"]
                    for a in trickles
                    if a["status"] == 408
                ),
                "cpu_s": attacked["cpu_s"],
                "other_trickle_answers": [
                    a for a in trickles if a["status"] not in (None, 408, 429)
                ][:10],
            },
            "reconcile": rec,
        },
    )


def _findings(
    plan: attackers.AttackPlan,
    rate: float,
    measured: dict[str, Phase],
    attacked: dict[str, Any],
    rec: dict[str, Any],
    report: dict[str, Any],
    attack_began: float,
) -> list[str]:
    baseline, attack = measured["baseline"], measured["attack"]
    bombs, uploads = attacked["bombs"], attacked["uploads"]
    trickles = _answers(attacked["trickles"])
    held_at_end = trickles.pop("none", 0)
    closed = [a["closed_s"] * 1000 for a in uploads if a["closed_s"] is not None]
    rss_start = attack.rss[0][1] if attack.rss else float("nan")
    return [
        f"Honest predicts ({rate:.0f} req/s, the predictor key): baseline "
        f"{baseline.predict.text()}; under attack {attack.predict.text()}; p99 ratio "
        f"{ratio(attack.predict.p99, baseline.predict.p99):.2f} (the bar: at most 2).",
        f"/healthz every {HEALTH_EVERY_S * 1000:.0f} ms: baseline {baseline.healthz.text()}; "
        f"under attack {attack.healthz.text()}; p99 ratio "
        f"{ratio(attack.healthz.p99, baseline.healthz.p99):.2f}.",
        f"YAML alias bombs (9 levels) to /api/v1/runs without a key: {len(bombs)} sent; answers "
        f"{_counted(_answers(bombs))}; {sum(1 for a in bombs if a['before_body'])} answered "
        f"from the headers, before any of the body was sent ({_ms(bombs).text()}).",
        f"200 MB uploads without a key: {len(uploads)}; answers {_counted(_answers(uploads))} "
        f"({_ms(uploads).text()}); at most "
        f"{max((a['body_sent'] for a in uploads), default=0) / MB:.1f} MB of the 200 MB had "
        "left the client (socket buffers) when the answer came; the client kept sending, and "
        f"the server closed {len(closed)} of {len(uploads)} connections, after at most "
        f"{max(closed, default=float('nan')):.0f} ms and "
        f"{max((a['sent_total'] for a in uploads), default=0) / MB:.1f} MB.",
        f"Trickling predict bodies (a second predictor key, {plan.trickle_connections} "
        f"connections, 1 byte every {plan.trickle_every_s:g} s): answers {_counted(trickles)}; "
        f"{held_at_end} still open when the attack stopped{_unexpected(attacked['trickles'])}; "
        "the 429s came in "
        f"{_ms([a for a in attacked['trickles'] if a['status'] == 429]).text()}, the 408s "
        f"{_waves(attacked['trickles'], attack_began)} s into the attack.",
        "Slowest honest predicts (ms at s into the phase): baseline "
        + ", ".join(f"{ms:.0f} at {at:.1f}" for at, ms, _ in baseline.slowest(8))
        + "; under attack "
        + ", ".join(f"{ms:.0f} at {at:.1f}" for at, ms, _ in attack.slowest(8))
        + ".",
        f"Worker memory (RSS of the 2 workers): {rss_start:.0f} MB when the attack began, "
        f"+{attack.rss_growth_mb:.1f} MB at its peak under attack (baseline phase: "
        f"+{baseline.rss_growth_mb:.1f} MB). Worker CPU time: {baseline.cpu_s:.1f} s in the "
        f"baseline phase, {attack.cpu_s:.1f} s under attack (each {plan.seconds:.0f} s long); "
        f"the attackers' process used {attacked['cpu_s']:.1f} s, the honest client "
        f"{baseline.client_cpu_s:.1f} s and {attack.client_cpu_s:.1f} s.",
        f"Honest requests not answered 200: {baseline.failed + attack.failed}; "
        f"{rec['lost']} answered decisions missing from the log, {rec['unseen_logged']} logged "
        f"but unanswered; `govern audit verify`: exit {report['exit_code']}.",
    ]


def _unexpected(trickles: list[dict[str, Any]]) -> str:
    """The trickling key's answers other than 408 and 429, with their error codes."""
    codes: Counter[str] = Counter()
    for a in trickles:
        if a["status"] not in (None, 408, 429):
            try:
                code = json.loads(a["body"])["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = "?"
            codes[f"{a['status']} {code}"] += 1
    if not codes:
        return ""
    note = (
        " (a process's predict slots were all in use: the global admission counts requests "
        "before their key is checked)"
        if any(k.endswith("overloaded") for k in codes)
        else ""
    )
    return f"; besides 408 and 429: {_counted(codes)}{note}"


def _waves(trickles: list[dict[str, Any]], began: float) -> str:
    """When the 408s came, to the tenth of a second, with how many at each time."""
    times = Counter(
        round(a["began"] + a["seconds"] - began, 1) for a in trickles if a["status"] == 408
    )
    return ", ".join(f"{n} at {at:g}" for at, n in sorted(times.items())) or "none"


def _figures(phase: Phase) -> dict[str, Any]:
    return {
        "predict": phase.predict.__dict__,
        "healthz": phase.healthz.__dict__,
        "failed": phase.failed,
        "rss_mb": phase.rss,
        "cpu_s": phase.cpu_s,
        "client_cpu_s": phase.client_cpu_s,
        "slowest": phase.slowest(),
        "predict_status": Counter(str(s.status) for s in phase.sent),
    }


def _counted(answers: Counter[str]) -> str:
    return ", ".join(f"{n} x {status}" for status, n in sorted(answers.items())) or "none"
