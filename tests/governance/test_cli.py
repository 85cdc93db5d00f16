from __future__ import annotations

import stat

import sqlalchemy as sa
from typer.testing import CliRunner

from core.auth.models import ApiKey
from core.bootstrap import ensure_admin_key
from core.config import Settings
from governance.cli import app as cli


def test_keys_create_list_revoke(env_settings: Settings, engine: sa.Engine) -> None:
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "--role", "appeals", "--name", "appeals-bot"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("gov_")
    key_id = token.split("_", 2)[1]

    listed = runner.invoke(cli, ["keys", "list"])
    assert listed.exit_code == 0
    assert key_id in listed.output
    assert "appeals-bot" in listed.output
    assert token.split("_", 2)[2] not in listed.output

    revoked = runner.invoke(cli, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(ApiKey.__table__).where(ApiKey.__table__.c.key_id == key_id)
        ).one()
    assert row.revoked_at is not None
    assert row.revoked_by == "cli"


def test_keys_create_rejects_unknown_role(env_settings: Settings) -> None:
    result = CliRunner().invoke(cli, ["keys", "create", "--role", "root", "--name", "x"])
    assert result.exit_code == 2
    assert "root" in result.output


def test_revoke_unknown_key_is_an_error(env_settings: Settings) -> None:
    result = CliRunner().invoke(cli, ["keys", "revoke", "nope"])
    assert result.exit_code == 2
    assert "nope" in result.output


def test_first_start_creates_one_admin_key(settings: Settings, engine: sa.Engine) -> None:
    key = ensure_admin_key(settings, engine)
    assert key is not None
    path = settings.admin_key_file
    assert path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_admin_key(settings, engine) is None
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ApiKey.__table__)).scalar() == 1
