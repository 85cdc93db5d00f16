"""Console sessions: a person signs in once with an API key and gets a cookie.

The cookie holds a random token; the database holds only its SHA-256. Each request finds the
session by that hash and checks, in this order: it was not ended (sign-out), it is not past its
absolute end (``GOV_CONSOLE_SESSION_MAX_S`` after sign-in), it has not been idle for
``GOV_CONSOLE_IDLE_TIMEOUT_S``, and its key is still active (not revoked, not expired). The key
is read from the database on every request, so a revocation ends the key's sessions at once, in
every worker. ``last_seen_at`` is written at most every ``TOUCH_EVERY`` so that reading pages
does not write on every request; idleness is measured to within that.

The CSRF token of a session is derived from its token (an HMAC), so nothing more is stored and a
page can be given the token without a read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlmodel import Session, select

from core.auth.models import ApiKey, ConsoleSession, Role
from core.auth.schemas import Principal
from core.auth.service import authenticate, is_active
from core.db import utcnow
from core.errors import Unauthorized

TOUCH_EVERY = timedelta(seconds=30)
SIGNED_OUT = "you have signed out; sign in again"
EXPIRED = "your session has ended; sign in again"
IDLE = "your session was idle too long; sign in again"
KEY_GONE = "the API key of this session is no longer active (revoked or expired)"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(token: str) -> str:
    """The CSRF token of the session whose cookie holds ``token``."""
    return hmac.new(token.encode(), b"govern console csrf", hashlib.sha256).hexdigest()


def csrf_matches(token: str, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(csrf_token(token), sent)


def sign_in(
    session: Session, api_key: str, *, max_age_s: int, now: datetime | None = None
) -> tuple[str, Principal]:
    """A new session for the holder of ``api_key`` (checked as the API checks it); returns the
    cookie's token, shown once, and who signed in. ``Unauthorized`` for a bad key."""
    principal = authenticate(session=session, token=api_key)
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=max_age_s)
    if principal.expires_at is not None:
        expires = min(expires, principal.expires_at)
    session.add(
        ConsoleSession(
            token_hash=token_hash(token),
            key_id=principal.key_id,
            created_at=now,
            last_seen_at=now,
            expires_at=expires,
        )
    )
    session.flush()
    return token, principal


def principal_for(
    session: Session, token: str, *, idle_timeout_s: int, now: datetime | None = None
) -> Principal:
    """Who holds the session with this token, or ``Unauthorized`` saying why it is over."""
    now = now or utcnow()
    row = session.exec(
        select(ConsoleSession).where(ConsoleSession.token_hash == token_hash(token))
    ).first()
    if row is None or row.ended_at is not None:
        raise Unauthorized(SIGNED_OUT)
    if now >= row.expires_at:
        raise Unauthorized(EXPIRED)
    if now - row.last_seen_at >= timedelta(seconds=idle_timeout_s):
        raise Unauthorized(IDLE)
    key = session.exec(select(ApiKey).where(ApiKey.key_id == row.key_id)).first()
    if key is None or not is_active(key, now):
        raise Unauthorized(KEY_GONE)
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        session.add(row)
        session.flush()
    return Principal(
        key_id=key.key_id, name=key.name, role=Role(key.role), expires_at=key.expires_at
    )


def sign_out(session: Session, token: str, now: datetime | None = None) -> None:
    row = session.exec(
        select(ConsoleSession).where(ConsoleSession.token_hash == token_hash(token))
    ).first()
    if row is not None and row.ended_at is None:
        row.ended_at = now or utcnow()
        session.add(row)
        session.flush()
