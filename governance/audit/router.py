from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, status
from pydantic import AwareDatetime, BaseModel, Field

from core.auth.models import Role
from core.auth.schemas import Principal
from core.deps import SessionDep, SettingsDep, allow
from core.pagination import Paged, PageDep, next_cursor
from governance.audit import alerts, verification
from governance.audit.schemas import Checkpoint, VerifyReport

router = APIRouter(prefix="/audit", tags=["audit"])

Auditor = Annotated[Principal, Depends(allow(Role.compliance))]
AlertReader = Annotated[Principal, Depends(allow(Role.compliance, Role.data_scientist))]


class CheckpointCreate(BaseModel):
    chain: str = Field(default="decision", max_length=32)


class ExportedCheckpoint(BaseModel):
    """A checkpoint as ``govern audit checkpoint`` exports it."""

    chain: str = Field(min_length=1, max_length=32)
    seq: int = Field(ge=1, le=2**63 - 1)
    record_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    signed_at: str = Field(min_length=1, max_length=64)
    signature: str = Field(min_length=1, max_length=200)
    public_key: str | None = Field(default=None, max_length=200)
    algorithm: Literal["Ed25519"] = "Ed25519"


class VerifyRequest(BaseModel):
    checkpoints: list[ExportedCheckpoint] = Field(default_factory=list, max_length=1000)


@router.get(
    "/verify",
    response_model=VerifyReport,
    response_model_exclude_unset=True,
    summary="Recompute every hash chain and check every stored checkpoint",
)
def verify(session: SessionDep, settings: SettingsDep, _principal: Auditor) -> dict[str, Any]:
    return verification.verify_report(session, settings)


@router.post(
    "/verify",
    response_model=VerifyReport,
    response_model_exclude_unset=True,
    summary="Verify, also against checkpoints exported earlier",
)
def verify_with(
    body: VerifyRequest, session: SessionDep, settings: SettingsDep, _principal: Auditor
) -> dict[str, Any]:
    return verification.verify_report(
        session, settings, extra_checkpoints=[c.model_dump() for c in body.checkpoints]
    )


@router.post(
    "/checkpoints",
    response_model=Checkpoint,
    status_code=status.HTTP_201_CREATED,
    summary="Sign the chain head with the Ed25519 key kept outside the database; export the result",
)
def create_checkpoint(
    body: CheckpointCreate, session: SessionDep, settings: SettingsDep, principal: Auditor
) -> dict[str, Any]:
    return verification.checkpoint_dict(
        verification.create_checkpoint(session, settings, body.chain, principal.key_id)
    )


@router.get("/checkpoints", response_model=list[Checkpoint], summary="Signed checkpoints")
def list_checkpoints(session: SessionDep, _principal: Auditor) -> list[dict[str, Any]]:
    return [verification.checkpoint_dict(c) for c in verification.stored_checkpoints(session)]


@router.get(
    "/alerts",
    response_model=Paged[alerts.AlertPublic],
    summary="Stored alerts, newest first: boundary probing by a caller key",
)
def list_alerts(
    session: SessionDep,
    _principal: AlertReader,
    page: PageDep,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    key_id: Annotated[str | None, Query(max_length=32)] = None,
    endpoint: Annotated[str | None, Query(max_length=100)] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> Paged[alerts.AlertPublic]:
    rows = alerts.list_alerts(
        session, page, kind=kind, key_id=key_id, endpoint=endpoint, since=since, until=until
    )
    return Paged(
        data=[alerts.alert_public(a) for a in rows],
        count=len(rows),
        next_cursor=next_cursor(rows, page),
    )


@router.post(
    "/alerts/scan",
    response_model=list[alerts.AlertPublic],
    summary="Scan the recent decision log for boundary probing now; returns the alerts raised",
)
def scan_alerts(
    session: SessionDep, settings: SettingsDep, _principal: Auditor
) -> list[alerts.AlertPublic]:
    return [alerts.alert_public(a) for a in alerts.scan(session, settings)]
