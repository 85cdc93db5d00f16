from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from core.auth.models import Role


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiKeyPublic(BaseModel):
    key_id: str
    name: str
    role: Role
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    active: bool


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The secret key. It is shown this once and never stored.")


class ApiKeysPublic(BaseModel):
    data: list[ApiKeyPublic]
    count: int


class Principal(BaseModel):
    """The caller of a request, as proven by its API key."""

    key_id: str
    name: str
    role: Role
    expires_at: datetime | None = None
