"""RELIABILITY.md: one row per scenario, with the command that produced it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class Row:
    scenario: str
    load: str
    faults: str
    requests: int | str
    ok_200: int | str
    logged: int | str
    lost: int | str
    chain: str
    passed: bool
    command: str
    findings: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


def counts(reconciled: dict[str, Any]) -> dict[str, Any]:
    """A row's request, 200, logged and lost cells, from ``load.reconcile``."""
    return {
        "requests": reconciled["requests"],
        "ok_200": reconciled["ok_200"],
        "logged": reconciled["decisions_logged"],
        "lost": reconciled["lost"],
    }


HEADER = (
    "| Scenario | Load | Faults injected | Requests sent | 200s received | Decisions logged "
    "| Lost | Chain verified | Result |\n|---|---|---|---:|---:|---:|---:|---|---|\n"
)


def render(rows: list[Row], command: str, profile: str, seconds: float, notes: list[str]) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Reliability\n",
        "govern's promise: no decision is answered without a durable record, no record changes "
        "without detection, and no caller reaches what its role does not allow. These drills test "
        "it against a real server (uvicorn with several worker processes) on a real PostgreSQL 15. "
        "Regenerate this file with the command below; every figure here comes from that run.\n",
        f"Run {when}, profile `{profile}`, {seconds:.0f} s in all: `{command}`\n",
        HEADER
        + "".join(
            f"| {r.scenario} | {r.load} | {r.faults} | {r.requests} | {r.ok_200} | {r.logged} "
            f"| {r.lost} | {r.chain} | {'pass' if r.passed else '**FAIL**'} |\n"
            for r in rows
        ),
        "## Each scenario\n",
    ]
    for r in rows:
        lines.append(f"### {r.scenario}\n")
        lines.append(f"Command: `{r.command}`\n")
        lines.extend(f"- {finding}" for finding in r.findings)
        lines.append("")
    if notes:
        lines.append("## Notes and known limitations\n")
        lines.extend(f"- {note}" for note in notes)
        lines.append("")
    return "\n".join(lines)


def write(path: Path, text: str) -> None:
    path.write_text(text if text.endswith("\n") else text + "\n")
