"""The durable decision log with group commit.

Predict calls hand their records to one writer thread per process and wait. The writer takes
everything queued, appends it to the hash chain in one transaction and commits once, then wakes
every waiter: at low load a batch is one record and nothing waits for company; under load,
records that arrive during a commit share the next one. A waiter learns of success only after
the commit returned, and of failure as an exception, so predict can fail closed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from core.audit import ledger
from core.audit.ledger import ColumnsOf
from core.db import transaction
from core.errors import is_connection_error
from serving import metrics
from serving.models import DecisionRecord
from serving.payload import DecisionPayload

log = logging.getLogger("govern.decision_log")

CHAIN = "decision"
_STOP = object()


def columns_of(content: dict[str, Any]) -> dict[str, Any]:
    """The columns of a record's stored content, read back through its typed payload: what
    verification compares with the row (and how hand-written records are appended)."""
    return DecisionPayload.from_content(content).columns()


@dataclass
class _Batch:
    payloads: Sequence[DecisionPayload]
    future: Future[list[tuple[int, str]]] = field(default_factory=Future)


class DecisionLog:
    def __init__(self, sessions: sessionmaker[Session], max_batch: int = 256) -> None:
        self.sessions = sessions
        self.max_batch = max_batch
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="govern-decision-log", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, payloads: Sequence[DecisionPayload]) -> Future[list[tuple[int, str]]]:
        """Queue records; the future resolves to (seq, record_hash) each, after the commit."""
        batch = _Batch(payloads)
        if self._thread is None:
            batch.future.set_exception(RuntimeError("the decision log is not running"))
            return batch.future
        self._queue.put(batch)
        metrics.LOG_QUEUE.inc(len(payloads))
        return batch.future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batches = [first]
            size = len(first.payloads)
            stop = False
            while size < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batches.append(item)
                size += len(item.payloads)
            self._write(batches, size)
            if stop:
                return

    def _write(self, batches: list[_Batch], size: int) -> None:
        metrics.LOG_QUEUE.dec(size)
        self._commit(batches, size)

    def _commit(self, batches: list[_Batch], size: int) -> None:
        """One transaction for the group. If it fails for a reason other than the database
        being unreachable, each caller's records are retried alone: a record that cannot be
        written (text the database refuses, say) fails only its own caller, never the others
        that happened to share its commit."""
        started = time.perf_counter()
        payloads = [p for b in batches for p in b.payloads]
        try:
            with transaction(self.sessions) as session:
                placed = ledger.append(
                    session,
                    chain=CHAIN,
                    table=DecisionRecord.__table__,  # type: ignore[attr-defined]
                    contents=[p.chain_content() for p in payloads],
                    columns_of=_columns_by_id(payloads),
                )
        except BaseException as exc:
            isolable = isinstance(exc, Exception) and not is_connection_error(exc)
            if len(batches) > 1 and isolable:
                metrics.LOG_ISOLATED.inc()
                log.warning(
                    "decision log group of %d requests failed (%s); writing each alone",
                    len(batches),
                    type(exc).__name__,
                )
                for batch in batches:
                    self._commit([batch], len(batch.payloads))
                return
            metrics.LOG_FAILURES.inc()
            log.error("decision log write failed for %d records: %s", size, exc)
            for batch in batches:
                if not batch.future.done():
                    batch.future.set_exception(exc)
            return
        metrics.LOG_WRITE.observe(time.perf_counter() - started)
        metrics.LOG_BATCH.observe(size)
        offset = 0
        for batch in batches:
            n = len(batch.payloads)
            batch.future.set_result(placed[offset : offset + n])
            offset += n


def _columns_by_id(payloads: Sequence[DecisionPayload]) -> ColumnsOf:
    """Each record's columns from its payload, looked up by decision id: the ledger passes back
    the content it hashed, and the columns need not be parsed out of it again."""
    columns = {p.decision_id: p.columns() for p in payloads}
    return lambda content: columns[content["decision_id"]]
