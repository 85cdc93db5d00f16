"""Prometheus metrics.

With several worker processes, `govern serve` gives them a fresh directory in
PROMETHEUS_MULTIPROC_DIR (``shared_across_workers``). prometheus_client reads that variable when it
is imported: each worker then keeps its values in files of its own there, and /metrics (whichever
worker answers) adds up every worker's files. Counters and histograms count every worker that
ever ran; the two gauges are ``multiprocess_mode="livesum"``, sums over the workers alive (queue
depth, predicts in flight), so an exited worker's are dropped (``forget_exited_workers``).
Without the variable, the values live in memory and /metrics reads this process's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Read once, as prometheus_client did when imported above: it decided then whether values live in
# this directory's files or in memory.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROC_DIR = os.environ.get(MULTIPROC_ENV) or None

LATENCY_BUCKETS = (
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)

# Label values come from fixed sets: a known endpoint's name or UNKNOWN_ENDPOINT, and for
# rejections the request field at fault, one of REJECTION_REASONS or "other".
UNKNOWN_ENDPOINT = "_unknown"
REJECTION_REASONS = frozenset(
    {"body", "subject_id", "features", "context", "instances", "inputs", "parameters", "id"}
)


def rejection_reason(field: str) -> str:
    root = field.split(".", 1)[0] or "body"
    return root if root in REJECTION_REASONS else "other"


PREDICT_REQUESTS = Counter(
    "govern_predict_requests_total",
    "Predict requests by endpoint and HTTP status",
    ["endpoint", "status"],
)
DECISIONS = Counter(
    "govern_decisions_total",
    "Logged decisions by endpoint, model, version and route (shadow decisions have route=shadow)",
    ["endpoint", "model", "version", "route"],
)
OOD_SCORING = Histogram(
    "govern_ood_scoring_seconds",
    "Time predict spends on out-of-distribution scoring, per model per request",
    buckets=(0.000005, 0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.001, 0.005),
)
OUTLIERS = Counter(
    "govern_outlier_decisions_total",
    "Live decisions whose input scored beyond the model's out-of-distribution threshold",
    ["endpoint", "model", "version"],
)
PROBING_ALERTS = Counter(
    "govern_probing_alerts_total",
    "Boundary-probing alerts raised (one per episode of one key on one model version)",
    ["endpoint"],
)
REJECTIONS = Counter(
    "govern_rejections_total",
    "Rejected predict requests (4xx), logged as attempts",
    ["endpoint", "reason"],
)
PREDICT_LATENCY = Histogram(
    "govern_predict_latency_seconds",
    "Predict latency, request to logged answer",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
LOG_WRITE = Histogram(
    "govern_decision_log_write_seconds",
    "Time to commit one batch of log records",
    buckets=LATENCY_BUCKETS,
)
LOG_BATCH = Histogram(
    "govern_decision_log_batch_records",
    "Records per group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
LOG_QUEUE = Gauge(
    "govern_decision_log_queue_depth",
    "Records waiting for the log writer",
    multiprocess_mode="livesum",
)
PREDICT_SHED = Counter(
    "govern_predict_shed_total",
    "Predict calls refused with 503 before any work because too many were in progress",
)
PREDICT_SHED_PER_KEY = Counter(
    "govern_predict_shed_per_key_total",
    "Predict calls refused with 429 because their key held its most slots in the process",
)
NOTICES_OVERDUE = Gauge(
    "govern_notices_overdue",
    "Adverse-action notices past their deadline and not sent (at the last clock scan)",
    multiprocess_mode="max",
)
NOTICES_DUE_SOON = Gauge(
    "govern_notices_due_soon",
    "Adverse-action notices due within GOV_NOTICE_DUE_SOON_DAYS and not sent",
    multiprocess_mode="max",
)
DENIALS_WITHOUT_NOTICE = Gauge(
    "govern_denials_without_notice",
    "Adverse decisions with no notice generated, by their delivery clock (overdue, due_soon, "
    "later), within GOV_NOTICE_WATCH_DAYS (at the last clock scan)",
    ["clock"],
    multiprocess_mode="max",
)
PREDICT_INFLIGHT = Gauge(
    "govern_predict_inflight",
    "Predict calls in progress, waiting included",
    multiprocess_mode="livesum",
)
LOG_FAILURES = Counter("govern_decision_log_failures_total", "Batches that failed to commit")
LOG_ISOLATED = Counter(
    "govern_decision_log_isolated_total",
    "Group commits that failed and were retried one caller at a time",
)
SHADOW_DISAGREEMENTS = Counter(
    "govern_shadow_disagreements_total",
    "Shadow decisions whose label differs from the live decision",
    ["endpoint", "model", "version"],
)


def render() -> tuple[bytes, str]:
    """The metrics page: every worker's values added up, or this process's."""
    if MULTIPROC_DIR:
        forget_exited_workers(MULTIPROC_DIR)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, MULTIPROC_DIR)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def forget_exited_workers(directory: str) -> list[int]:
    """Take the live gauges of every worker that has exited out of the sums (``mark_process_dead``;
    its counters and histograms stay counted). Returns their pids.

    Done here, where the files are read, because an exiting worker cannot do it itself: uvicorn
    ends a worker by raising again the SIGTERM it shut down on, so no exit handler runs, and a
    worker that crashed or was killed runs none either.
    """
    pids = {path.stem.rsplit("_", 1)[-1] for path in Path(directory).glob("gauge_live*_*.db")}
    exited = sorted(int(pid) for pid in pids if pid.isdigit() and not _alive(int(pid)))
    for pid in exited:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
    return exited


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def shared_across_workers(var_dir: Path, workers: int) -> Iterator[Path | None]:
    """For a server of several worker processes: a fresh directory for their metrics, set in
    PROMETHEUS_MULTIPROC_DIR for the workers to inherit, and removed when the server stops.

    It is ``var_dir/metrics/<pid>-<random>``; directories a server left when it was killed (its
    pid no longer running) are removed first. One worker needs none (yields None), and a
    directory the environment already names is used as it is and left in place.
    """
    if workers <= 1 or os.environ.get(MULTIPROC_ENV):
        yield None
        return
    root = var_dir.resolve() / "metrics"
    root.mkdir(parents=True, exist_ok=True)
    for left in root.iterdir():
        pid = left.name.split("-", 1)[0]
        if left.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(left, ignore_errors=True)
    directory = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
    os.environ[MULTIPROC_ENV] = str(directory)
    try:
        yield directory
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)
