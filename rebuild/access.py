"""Who may see which rebuild, and how much of it.

A rebuild of a decision names that decision, and its report names server paths (the data
repository, error texts). Appeals tooling works one decision at a time by id: it may read a
rebuild only by naming the decision it holds, so rebuild ids cannot be walked to find other
applicants' decisions, and an id it does not hold looks exactly like one that does not exist.
Every read of a decision's rebuild goes into the access trail, like every read of the decision.
Server paths are shown only to admin and data-scientist keys.
"""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import Session, col, select

from core.audit import access
from core.auth.models import Role
from core.auth.schemas import Principal
from core.errors import NotFound
from core.pagination import Page
from lineage.jobs import request_cancel
from lineage.models import Rebuild, RunStatus
from rebuild.schemas import RebuildPublic
from rebuild.service import get_rebuild

SEES_PATHS = frozenset({Role.admin, Role.data_scientist})
HIDDEN = "[server path]"
# An absolute POSIX path of two or more parts, as DVC, git and Python errors quote them.
_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.@+~-]+/)+[\w.@+~-]*")


def _not_found(rebuild_id: int) -> NotFound:
    return NotFound(f"no rebuild {rebuild_id} of the decision given", details={"id": rebuild_id})


def _visible(
    session: Session, rebuild_id: int, principal: Principal, decision_id: str | None
) -> Rebuild:
    """The rebuild, if this caller may see it; appeals must name the decision it belongs to.
    Anything else is the same 404 as an id that does not exist."""
    try:
        found = get_rebuild(session, rebuild_id)
    except NotFound:
        raise _not_found(rebuild_id) from None
    if decision_id is not None and found.decision_id != decision_id:
        raise _not_found(rebuild_id)
    if principal.role is Role.appeals and (decision_id is None or found.decision_id is None):
        raise _not_found(rebuild_id)
    return found


def read(
    session: Session, rebuild_id: int, principal: Principal, decision_id: str | None
) -> RebuildPublic:
    found = _visible(session, rebuild_id, principal, decision_id)
    _trail(session, principal, "decision.rebuild.read", found)
    return public(found, principal)


def _trail(session: Session, principal: Principal, action: str, found: Rebuild) -> None:
    """A decision's rebuild is decision data: reading or cancelling it goes into the trail."""
    if found.decision_id is not None:
        access.record(
            session, principal, action, target=found.decision_id, params={"rebuild_id": found.id}
        )


def cancel(
    session: Session, rebuild_id: int, principal: Principal, decision_id: str | None
) -> RebuildPublic:
    """Cancel a rebuild the caller may see (the same rule as reading it)."""
    found = _visible(session, rebuild_id, principal, decision_id)
    request_cancel(session, Rebuild, rebuild_id, principal.key_id)
    _trail(session, principal, "decision.rebuild.cancel", found)
    session.refresh(found)  # the cancel was a conditional UPDATE beside the ORM
    return public(found, principal)


def of_decision(
    session: Session, decision_id: str, principal: Principal, page: Page
) -> list[RebuildPublic]:
    """A decision's rebuilds, newest first (the caller has shown it holds the decision id)."""
    query = (
        select(Rebuild)
        .where(Rebuild.decision_id == decision_id)
        .order_by(col(Rebuild.id).desc())
        .limit(page.limit)
    )
    if page.cursor is not None:
        query = query.where(col(Rebuild.id) < page.cursor)
    rows = list(session.exec(query).all())
    access.record(session, principal, "decision.rebuild.list", target=decision_id, rows=len(rows))
    return [public(row, principal) for row in rows]


def public(found: Rebuild, principal: Principal) -> RebuildPublic:
    assert found.id is not None
    report = found.report
    message = found.message
    if principal.role not in SEES_PATHS:
        report = hide_paths(report)
        message = _PATH.sub(HIDDEN, message)
    return RebuildPublic(
        id=found.id,
        model=found.model_name,
        version=found.version,
        decision_id=found.decision_id,
        status=RunStatus(found.status),
        progress=found.progress,
        message=message,
        verdict=found.verdict,
        report=report,
        executor=found.executor,
        created_at=found.created_at,
        created_by=found.created_by,
        started_at=found.started_at,
        finished_at=found.finished_at,
    )


def hide_paths(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The report with the data repository's location removed and every server path in its
    texts replaced."""
    if report is None:
        return None
    hidden: dict[str, Any] = _scrub(report)  # a new document: the stored one is untouched
    data = hidden.get("data")
    if isinstance(data, dict) and "repo" in data:
        data["repo"] = HIDDEN
    return hidden


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _PATH.sub(HIDDEN, value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value
