"""Job rows (training runs, rebuilds): their state lives in the database, not in the executor."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from governance.db import transaction
from lineage.executor import abandoned
from lineage.models import Rebuild, RunStatus, TrainingRun

Job = TypeVar("Job", TrainingRun, Rebuild)


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


def abandoned_jobs(session: Session, table: type[Job]) -> list[Job]:
    """Jobs still queued or running whose process, on this host, no longer exists."""
    rows = session.exec(
        select(table).where(
            col(table.status).in_([RunStatus.queued.value, RunStatus.running.value])
        )
    ).all()
    return [row for row in rows if abandoned(row.worker)]
