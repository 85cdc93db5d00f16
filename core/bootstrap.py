"""First start: make sure an operator can get in."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import Engine

from core.auth import service as auth_service
from core.auth.models import Role
from core.config import Settings
from core.db import session_factory, transaction


def write_secret(path: Path, secret: str) -> None:
    """Write a secret readable by its owner only, never briefly world-readable."""
    # This may be what creates var_dir, which holds the database and the artifacts too.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def ensure_admin_key(settings: Settings, engine: Engine) -> str | None:
    """Create the first admin key when the database has no active admin.

    Returns the new key (to be shown once), or None when an admin already exists.
    """
    with transaction(session_factory(engine)) as session:
        if auth_service.count_active_admins(session=session) > 0:
            return None
        created = auth_service.create_key(
            session=session, name="bootstrap admin", role=Role.admin, created_by="bootstrap"
        )
    write_secret(settings.admin_key_file, created.key)
    return created.key
