"""Latency figures of a drill's phase, and the attack drill's pass rule. Pure: no server, no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

# The acceptance bar: under attack, honest p99 may at most double.
MAX_P99_RATIO = 2.0
# Worker memory may grow this much while 200 MB bodies are announced at the server.
MAX_RSS_GROWTH_MB = 100.0


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100), interpolated linearly between closest ranks (NumPy's
    default); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Figures:
    """One kind of request in one phase: how many were answered, and how fast (ms)."""

    count: int
    p50: float
    p99: float

    @classmethod
    def of(cls, latencies_ms: list[float]) -> Figures:
        return cls(len(latencies_ms), percentile(latencies_ms, 50), percentile(latencies_ms, 99))

    def text(self) -> str:
        return f"p50 {self.p50:.1f} ms, p99 {self.p99:.1f} ms ({self.count} answered)"


def ratio(after: float, before: float) -> float:
    """``after / before``; infinite when ``before`` is zero or missing and ``after`` is not."""
    if math.isnan(after) or math.isnan(before):
        return math.nan
    if before <= 0:
        return math.inf if after > 0 else 1.0
    return after / before


@dataclass(frozen=True)
class AttackOutcome:
    """What the attack drill measured, reduced to what its pass rule reads."""

    baseline_p99_ms: float
    attack_p99_ms: float
    lost: int
    honest_failures: int  # honest predicts or probes not answered 200 (5xx, 429, none)
    unauthenticated: int  # attack requests sent without a key
    refused_unread: int  # of those, answered 401 before their body was sent
    rss_growth_mb: float


def failures(outcome: AttackOutcome) -> list[str]:
    """Why the attack drill fails; an empty list is a pass. Never laxer than the acceptance bar:
    a p99 that cannot be measured fails, it does not pass."""
    problems = []
    p99_ratio = ratio(outcome.attack_p99_ms, outcome.baseline_p99_ms)
    if math.isnan(p99_ratio) or p99_ratio > MAX_P99_RATIO:
        problems.append(
            f"honest p99 under attack is {p99_ratio:.2f}x the baseline (at most {MAX_P99_RATIO:g}x)"
        )
    if outcome.lost:
        problems.append(f"{outcome.lost} answered decisions are missing from the log")
    if outcome.honest_failures:
        problems.append(f"{outcome.honest_failures} honest requests were not answered 200")
    if outcome.unauthenticated == 0:
        problems.append("no unauthenticated attack was sent")
    elif outcome.refused_unread != outcome.unauthenticated:
        problems.append(
            f"{outcome.unauthenticated - outcome.refused_unread} of {outcome.unauthenticated} "
            "unauthenticated attacks were not answered 401 before their body was sent"
        )
    if math.isnan(outcome.rss_growth_mb) or outcome.rss_growth_mb > MAX_RSS_GROWTH_MB:
        problems.append(
            f"worker memory grew {outcome.rss_growth_mb:.0f} MB under attack "
            f"(at most {MAX_RSS_GROWTH_MB:g} MB)"
        )
    return problems
