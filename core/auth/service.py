"""API keys: creation, lookup and revocation.

Keys carry 256 bits of randomness, so a single SHA-256 is enough to make the stored value useless
to an attacker (there is nothing to brute-force) while keeping per-request verification cheap.
A slow password hash would add tens of milliseconds to every predict call for no gain.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from core.auth.models import ApiKey, Role
from core.auth.schemas import ApiKeyCreated, ApiKeyPublic, Principal
from core.db import utcnow
from core.errors import NotFound, Unauthorized

KEY_PREFIX = "gov"
SECRET_BYTES = 32


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _parse(token: str) -> str | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


def is_active(key: ApiKey, now: datetime | None = None) -> bool:
    now = now or utcnow()
    if key.revoked_at is not None:
        return False
    return key.expires_at is None or key.expires_at > now


def to_public(key: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic(
        key_id=key.key_id,
        name=key.name,
        role=Role(key.role),
        created_at=key.created_at,
        created_by=key.created_by,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        revoked_by=key.revoked_by,
        active=is_active(key),
    )


def create_key(
    *,
    session: Session,
    name: str,
    role: Role,
    created_by: str,
    expires_in_days: int | None = None,
) -> ApiKeyCreated:
    key_id = secrets.token_hex(6)
    token = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    key = ApiKey(
        key_id=key_id,
        name=name,
        role=role.value,
        key_hash=hash_key(token),
        created_by=created_by,
        expires_at=expires_at,
    )
    session.add(key)
    session.flush()
    return ApiKeyCreated(**to_public(key).model_dump(), key=token)


def list_keys(*, session: Session, include_revoked: bool = True) -> Sequence[ApiKey]:
    query = select(ApiKey).order_by(col(ApiKey.created_at), col(ApiKey.id))
    if not include_revoked:
        query = query.where(col(ApiKey.revoked_at).is_(None))
    return session.exec(query).all()


def get_key(*, session: Session, key_id: str) -> ApiKey:
    key = session.exec(select(ApiKey).where(ApiKey.key_id == key_id)).first()
    if key is None:
        raise NotFound(f"no API key with id {key_id!r}", details={"key_id": key_id})
    return key


def revoke_key(*, session: Session, key_id: str, revoked_by: str) -> ApiKey:
    key = get_key(session=session, key_id=key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        key.revoked_by = revoked_by
        session.add(key)
        session.flush()
    return key


def count_active_admins(*, session: Session) -> int:
    now = utcnow()
    return sum(
        1 for key in list_keys(session=session) if key.role == Role.admin and is_active(key, now)
    )


def authenticate(*, session: Session, token: str) -> Principal:
    key_id = _parse(token)
    if key_id is None:
        raise Unauthorized("malformed API key")
    key = session.exec(select(ApiKey).where(ApiKey.key_id == key_id)).first()
    if key is None or not hmac.compare_digest(key.key_hash, hash_key(token)):
        raise Unauthorized("invalid API key")
    if key.revoked_at is not None:
        raise Unauthorized("this API key has been revoked")
    if key.expires_at is not None and key.expires_at <= utcnow():
        raise Unauthorized("this API key has expired")
    return Principal(
        key_id=key.key_id, name=key.name, role=Role(key.role), expires_at=key.expires_at
    )
