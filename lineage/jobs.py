"""Job rows (training runs, rebuilds): their state lives in the database, not in the executor.

A job moves queued -> running -> succeeded or failed, and can be cancelled: a queued job at once,
a running one through ``cancelling`` (its process is killed at the next check). Every move out of
queued or running is a conditional UPDATE on the status it expects, so a cancel and a job that
finishes at the same moment cannot both win, on SQLite or PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from core.db import transaction, utcnow
from core.errors import Conflict
from lineage.executor import abandoned
from lineage.models import Rebuild, RunStatus, TrainingRun

Job = TypeVar("Job", TrainingRun, Rebuild)

ACTIVE = (RunStatus.queued.value, RunStatus.running.value, RunStatus.cancelling.value)
CANCELLED_BY_REQUEST = "cancelled by request"


def update_job(
    factory: sessionmaker[Session], table: type[Job], job_id: int, **fields: Any
) -> None:
    """Set fields of one job row in a transaction of its own (progress, status, result)."""
    with transaction(factory) as session:
        job = session.get(table, job_id)
        assert job is not None
        for key, value in fields.items():
            setattr(job, key, value)
        session.add(job)


def _move(session: Session, table: type[Job], job_id: int, expected: str, **fields: Any) -> bool:
    rows = table.__table__  # type: ignore[attr-defined]
    result = session.execute(
        sa.update(rows).where(rows.c.id == job_id, rows.c.status == expected).values(**fields)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def claim_job(
    factory: sessionmaker[Session], table: type[Job], job_id: int, worker: str, at: datetime
) -> bool:
    """queued -> running; False when the job is no longer queued (it was cancelled)."""
    with transaction(factory) as session:
        return _move(
            session,
            table,
            job_id,
            RunStatus.queued.value,
            status=RunStatus.running.value,
            started_at=at,
            worker=worker,
        )


def finish_job(session: Session, table: type[Job], job_id: int, **fields: Any) -> bool:
    """running -> the given fields (status included), inside the caller's transaction; False
    when a cancel came first, and then the caller must not commit its result."""
    return _move(session, table, job_id, RunStatus.running.value, **fields)


def stop_requested(factory: sessionmaker[Session], table: type[Job], job_id: int) -> str | None:
    """Why a running job must stop now, or None: read by the job while its process runs."""
    with transaction(factory) as session:
        status = session.execute(
            sa.select(table.__table__.c.status).where(  # type: ignore[attr-defined]
                table.__table__.c.id == job_id  # type: ignore[attr-defined]
            )
        ).scalar_one_or_none()
    return CANCELLED_BY_REQUEST if status == RunStatus.cancelling.value else None


def record_stop(
    factory: sessionmaker[Session],
    table: type[Job],
    job_id: int,
    code: str,
    message: str,
    **fields: Any,
) -> None:
    """A job whose process was killed: cancelled on request, or failed past its time limit;
    ``fields`` (the run's error, the rebuild's report) are set in the same transaction."""
    status = RunStatus.cancelled if code == "cancelled" else RunStatus.failed
    update_job(
        factory,
        table,
        job_id,
        status=status.value,
        message=f"{status.value}: {message}"[:500],
        finished_at=utcnow(),
        **fields,
    )


def request_cancel(session: Session, table: type[Job], job_id: int, actor: str) -> None:
    """Cancel a job: a queued one at once, a running one as soon as its process is killed.
    Cancelling a job that is already being cancelled changes nothing; a finished one is 409."""
    now = utcnow()
    if _move(
        session,
        table,
        job_id,
        RunStatus.queued.value,
        status=RunStatus.cancelled.value,
        message=f"cancelled before it started, by {actor}",
        finished_at=now,
    ):
        return
    if _move(
        session,
        table,
        job_id,
        RunStatus.running.value,
        status=RunStatus.cancelling.value,
        message=f"cancelling, by {actor}; the job's process is being stopped",
    ):
        return
    job = session.get(table, job_id)
    assert job is not None
    if job.status != RunStatus.cancelling.value:
        raise Conflict(
            f"this job has already finished ({job.status}); there is nothing to cancel",
            code="already_finished",
            details={"id": job_id, "status": job.status},
        )


def abandoned_jobs(session: Session, table: type[Job]) -> list[Job]:
    """Jobs still queued, running or cancelling whose process, on this host, no longer exists."""
    rows = session.exec(select(table).where(col(table.status).in_(ACTIVE))).all()
    return [row for row in rows if abandoned(row.worker)]
