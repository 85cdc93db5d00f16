from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from core.auth import service
from core.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, ApiKeysPublic, Principal
from core.deps import ANY_ROLE, SessionDep, allow

router = APIRouter(tags=["keys"])

AdminDep = Annotated[Principal, Depends(allow())]


@router.get("/whoami", response_model=Principal, summary="The caller's key id, name and role")
def whoami(principal: Annotated[Principal, Depends(allow(*ANY_ROLE))]) -> Principal:
    return principal


@router.get("/keys", response_model=ApiKeysPublic, summary="List API keys (never their secrets)")
def list_keys(
    session: SessionDep,
    _principal: AdminDep,
    include_revoked: Annotated[bool, Query()] = True,
) -> ApiKeysPublic:
    keys = [
        service.to_public(k)
        for k in service.list_keys(session=session, include_revoked=include_revoked)
    ]
    return ApiKeysPublic(data=keys, count=len(keys))


@router.post(
    "/keys",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key; the secret is returned once",
)
def create_key(body: ApiKeyCreate, session: SessionDep, principal: AdminDep) -> ApiKeyCreated:
    return service.create_key(
        session=session,
        name=body.name,
        role=body.role,
        created_by=principal.key_id,
        expires_in_days=body.expires_in_days,
    )


@router.delete("/keys/{key_id}", response_model=ApiKeyPublic, summary="Revoke an API key at once")
def revoke_key(
    key_id: str, session: SessionDep, principal: AdminDep, request: Request
) -> ApiKeyPublic:
    revoked = service.revoke_key(session=session, key_id=key_id, revoked_by=principal.key_id)
    request.app.state.keys.forget(key_id)  # at once in this process
    return service.to_public(revoked)
