"""Per-key caps on expensive work: how much one key may have computing at once, and how much it
may start per minute.

Anchors, counterfactuals, robustness probes and rebuilds each cost seconds of CPU, and a caller
can ask for a new one whenever it likes (another seed, another decision). One key must not be
able to make the service spend all its time on it, so each key gets a share: a concurrency cap
and a sliding one-minute rate, per process. Over either, the request is refused at once with 429
and ``Retry-After`` saying when a slot frees up. Pure and thread-safe; no database.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from core.errors import TooManyRequests

WINDOW_S = 60.0


class KeyLimiter:
    def __init__(
        self, concurrency: int, per_minute: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.concurrency = concurrency
        self.per_minute = per_minute
        self._clock = clock
        self._running: dict[str, int] = {}
        self._started: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, key: str, what: str) -> Iterator[None]:
        """Hold one of ``key``'s slots while the work runs; 429 if it has none free."""
        self.admit(key, what, hold=True)
        try:
            yield
        finally:
            with self._lock:
                left = self._running.get(key, 1) - 1
                if left > 0:
                    self._running[key] = left
                else:
                    self._running.pop(key, None)

    def admit(self, key: str, what: str, *, hold: bool = False) -> None:
        """Count one start for ``key`` (and hold a concurrency slot when ``hold``), or raise."""
        now = self._clock()
        with self._lock:
            started = self._started.setdefault(key, deque())
            while started and started[0] <= now - WINDOW_S:
                started.popleft()
            if hold and self._running.get(key, 0) >= self.concurrency:
                raise TooManyRequests(
                    f"this key already has {self.concurrency} {what} computing; retry when one "
                    "has finished",
                    retry_after_s=1,
                    details={"limit": "concurrency", "max": self.concurrency},
                )
            if len(started) >= self.per_minute:
                wait = math.ceil(started[0] + WINDOW_S - now)
                raise TooManyRequests(
                    f"this key has started {self.per_minute} {what} in the last minute, its most",
                    retry_after_s=wait,
                    details={"limit": "rate", "per_minute": self.per_minute},
                )
            started.append(now)
            if hold:
                self._running[key] = self._running.get(key, 0) + 1
