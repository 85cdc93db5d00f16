"""Retention: purge decision payloads older than ``GOV_RETENTION_DAYS`` (762: 25 months).

A purged record keeps its place in the hash chain: ``seq``, its hashes (``content_hash`` still
binds the content that was there), and the facts that name no one (when, which endpoint and
model version, the label and score). Its payload, inputs, context and subject id are set to
NULL, and its stored explanations are deleted. Its adverse-action notice keeps its row, dates,
status and hashes (template, HTML, PDF), and the ``case`` chain keeps its records; the notice's
HTML, PDF and content (reasons and applicant reference) are removed. Its appeal cases keep their
status, outcome, dates, keys, the class a person decided and the evidence's hashes and sizes;
the statement, the corrected values, the evidence's descriptions and file names, the reviewer's
rationale, what the reviewer was shown and the applicant's letter (its date, template and hashes
stay) are removed. ``govern audit verify`` still passes. The purge
is recorded in the access trail with its cutoff and row count. A dry run only counts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from core.audit import access
from core.auth.models import Role
from core.auth.schemas import Principal
from core.db import transaction, utcnow
from explain.models import Explanation
from governance.casework.models import AdverseNotice, AppealCase
from serving.models import DecisionRecord

DECISIONS: sa.Table = DecisionRecord.__table__  # type: ignore[attr-defined]
EXPLANATIONS: sa.Table = Explanation.__table__  # type: ignore[attr-defined]
NOTICES: sa.Table = AdverseNotice.__table__  # type: ignore[attr-defined]
PURGED_NOTICE = {"html": None, "pdf": None, "content": {"purged": True}}
CASES: sa.Table = AppealCase.__table__  # type: ignore[attr-defined]
KEPT_EVIDENCE = ("sha256", "bytes")
CHUNK = 5000
PURGED = {"payload": None, "features": None, "context": None, "subject_id": None}
SYSTEM = Principal(key_id="retention", name="govern retention", role=Role.admin)

Progress = Callable[[int, int], None]


def _due(cutoff: datetime) -> list[Any]:
    return [DECISIONS.c.created_at < cutoff, DECISIONS.c.payload.is_not(None)]


def plan(session: Session, days: int, now: datetime | None = None) -> dict[str, Any]:
    cutoff = (now or utcnow()) - timedelta(days=days)
    count, oldest, newest = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.min(DECISIONS.c.created_at),
            sa.func.max(DECISIONS.c.created_at),
        ).where(*_due(cutoff))
    ).one()
    return {
        "retention_days": days,
        "cutoff": cutoff.isoformat(),
        "records": int(count),
        "oldest": oldest.isoformat() if oldest else None,
        "newest": newest.isoformat() if newest else None,
    }


def _purge_cases(session: Session, ids: list[str]) -> None:
    for case_id, evidence in session.execute(
        sa.select(CASES.c.id, CASES.c.evidence).where(CASES.c.decision_id.in_(ids))
    ).all():
        session.execute(
            CASES.update()
            .where(CASES.c.id == case_id)
            .values(
                statement="",
                overrides={},
                evidence=[
                    {"description": "purged", **{k: e.get(k) for k in KEPT_EVIDENCE}}
                    for e in evidence or []
                ],
                rationale=None,
                review=None,
                letter_html=None,
                letter_pdf=None,
            )
        )


def apply(
    sessions: sessionmaker[Session],
    days: int,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    principal: Principal = SYSTEM,
) -> dict[str, Any]:
    """Purge in chunks of ``CHUNK`` records, each in its own transaction; returns the plan."""
    with transaction(sessions) as session:
        summary = plan(session, days, now)
    summary["dry_run"] = dry_run
    if dry_run or not summary["records"]:
        summary["purged"] = 0
        return summary
    cutoff = datetime.fromisoformat(summary["cutoff"])
    purged = 0
    while True:
        with transaction(sessions) as session:
            ids = [
                row[0]
                for row in session.execute(
                    sa.select(DECISIONS.c.decision_id)
                    .where(*_due(cutoff))
                    .order_by(DECISIONS.c.seq)
                    .limit(CHUNK)
                )
            ]
            if not ids:
                break
            session.execute(
                DECISIONS.update().where(DECISIONS.c.decision_id.in_(ids)).values(**PURGED)
            )
            session.execute(EXPLANATIONS.delete().where(EXPLANATIONS.c.decision_id.in_(ids)))
            session.execute(
                NOTICES.update().where(NOTICES.c.decision_id.in_(ids)).values(**PURGED_NOTICE)
            )
            _purge_cases(session, ids)
        purged += len(ids)
        if progress is not None:
            progress(purged, summary["records"])
    summary["purged"] = purged
    with transaction(sessions) as session:
        access.record(
            session,
            principal,
            "retention.purge",
            params={"retention_days": days, "cutoff": summary["cutoff"]},
            rows=purged,
            detail={"oldest": summary["oldest"], "newest": summary["newest"]},
        )
    return summary
