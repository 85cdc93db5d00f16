from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, Field

from governance.audit import service
from governance.auth.models import Role
from governance.auth.schemas import Principal
from governance.deps import SessionDep, SettingsDep, allow

router = APIRouter(prefix="/audit", tags=["audit"])

Auditor = Annotated[Principal, Depends(allow(Role.compliance))]


class CheckpointCreate(BaseModel):
    chain: str = Field(default="decision", max_length=32)


class VerifyRequest(BaseModel):
    checkpoints: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)


@router.get("/verify", summary="Recompute every hash chain and check every stored checkpoint")
def verify(session: SessionDep, settings: SettingsDep, _principal: Auditor) -> dict[str, Any]:
    return service.verify_report(session, settings)


@router.post("/verify", summary="Verify, also against checkpoints exported earlier")
def verify_with(
    body: VerifyRequest, session: SessionDep, settings: SettingsDep, _principal: Auditor
) -> dict[str, Any]:
    return service.verify_report(session, settings, extra_checkpoints=body.checkpoints)


@router.post(
    "/checkpoints",
    status_code=status.HTTP_201_CREATED,
    summary="Sign the chain head with the Ed25519 key kept outside the database; export the result",
)
def create_checkpoint(
    body: CheckpointCreate, session: SessionDep, settings: SettingsDep, principal: Auditor
) -> dict[str, Any]:
    return service.checkpoint_dict(
        service.create_checkpoint(session, settings, body.chain, principal.key_id)
    )


@router.get("/checkpoints", summary="Signed checkpoints")
def list_checkpoints(session: SessionDep, _principal: Auditor) -> list[dict[str, Any]]:
    return [service.checkpoint_dict(c) for c in service.stored_checkpoints(session)]
