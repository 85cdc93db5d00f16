"""The attack drill's attackers, run in a process of their own so that their work never delays
the honest client's clock: unauthenticated YAML alias bombs, unauthenticated 200 MB uploads, and
one predictor key holding trickling predict bodies open.

Started with the spawn method; imports nothing heavier than the standard library and rawhttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import asdict, dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

from reliability import rawhttp

UPLOAD_PATH = "/api/v1/models/attack-upload/versions"
RUNS_PATH = "/api/v1/runs"
PREDICT_PATH = "/api/v1/endpoints/credit/predict"


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" YAML document: ``levels`` nested aliases, ``width`` each; a loader that
    expands aliases builds width**levels nodes from a few hundred bytes."""
    names = [chr(ord("a") + i) for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [" + ", ".join(['"lol"'] * width) + "]"]
    for previous, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * width) + "]")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class AttackPlan:
    port: int
    seconds: float
    trickle_key: str  # a predictor key, not the honest client's
    trickle_body: bytes  # a valid predict body, sent one byte at a time
    trickle_connections: int = 40
    trickle_every_s: float = 1.0
    bombs_per_s: float = 5.0
    upload_bytes: int = 200 * 1024 * 1024
    upload_every_s: float = 2.0


def run(plan: AttackPlan, ready: Event, go: Event, results: Queue[dict[str, Any]]) -> None:
    """Process entry point: signal ``ready``, wait for ``go``, attack for ``plan.seconds``, then
    put what every attack got on ``results``."""
    ready.set()
    go.wait()
    results.put(asyncio.run(attack(plan)))


async def attack(plan: AttackPlan) -> dict[str, Any]:
    stop = asyncio.Event()
    started = time.monotonic()
    cpu_at_start = time.process_time()
    bombs: list[rawhttp.RawAnswer] = []
    uploads: list[rawhttp.RawAnswer] = []
    trickles: list[rawhttp.RawAnswer] = []

    async def bomb_loop() -> None:
        body = alias_bomb().encode()
        pending = []
        i = 0
        while not stop.is_set():
            pending.append(
                asyncio.ensure_future(
                    rawhttp.ask_before_body(
                        plan.port,
                        "POST",
                        RUNS_PATH,
                        {"Content-Type": "application/yaml"},
                        body,
                        wait_s=2.0,
                    )
                )
            )
            i += 1
            await _sleep_until(started + i / plan.bombs_per_s, stop)
        bombs.extend(await asyncio.gather(*pending))

    async def upload_loop() -> None:
        i = 0
        while not stop.is_set():
            uploads.append(
                await rawhttp.flood(
                    plan.port, UPLOAD_PATH, {"Content-Type": "application/json"}, plan.upload_bytes
                )
            )
            i += 1
            await _sleep_until(started + i * plan.upload_every_s, stop)

    async def trickle_loop() -> None:
        headers = {
            "Authorization": f"Bearer {plan.trickle_key}",
            "Content-Type": "application/json",
        }
        while not stop.is_set():
            answer = await rawhttp.trickle(
                plan.port, PREDICT_PATH, headers, plan.trickle_body, plan.trickle_every_s, stop
            )
            trickles.append(answer)
            if answer.status != 408:
                # Refused at once (429), or no connection: come back when told to, as the
                # attacker's own client library would.
                wait = float(answer.headers.get("retry-after", "1") or 1)
                await _sleep_until(time.monotonic() + wait, stop)

    async def stopper() -> None:
        await asyncio.sleep(plan.seconds)
        stop.set()

    await asyncio.gather(
        stopper(),
        bomb_loop(),
        upload_loop(),
        *(trickle_loop() for _ in range(plan.trickle_connections)),
    )
    return {
        "began": started,
        "seconds": time.monotonic() - started,
        "cpu_s": time.process_time() - cpu_at_start,
        "bombs": [_plain(a) for a in bombs],
        "uploads": [_plain(a) for a in uploads],
        "trickles": [_plain(a) for a in trickles],
    }


async def _sleep_until(when: float, stop: asyncio.Event) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)


def _plain(answer: rawhttp.RawAnswer) -> dict[str, Any]:
    found = asdict(answer)
    found["body"] = answer.body[:300].decode("utf-8", "replace")
    found["before_body"] = answer.before_body
    return found
