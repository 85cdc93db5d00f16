"""The embedded database and the artifact store are readable by the service user only, whatever
the umask: both hold applicants' data (protected attributes, models trained on them)."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from core import migrate
from core.config import Settings
from core.db import make_engine
from governance.app import create_app
from lineage.artifacts import ArtifactStore


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The common default, under which new files are world-readable unless made otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _sqlite_settings(tmp_path: Path) -> Settings:
    # The default database: var_dir/govern.db, with var_dir created by govern.
    return Settings(var_dir=tmp_path / "service" / "var", environment="test")


def _database_files(settings: Settings) -> list[Path]:
    database = settings.var_dir / "govern.db"
    return [database, Path(f"{database}-wal"), Path(f"{database}-shm")]


def test_migrations_and_the_first_connection_create_a_private_sqlite_database(
    tmp_path: Path,
) -> None:
    settings = _sqlite_settings(tmp_path)
    migrate.upgrade(settings)
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:  # -wal and -shm exist while a connection is open
            conn.execute(sa.text("SELECT count(*) FROM api_key")).scalar()
            files = _database_files(settings)
            assert all(path.exists() for path in files)
            assert {str(p.name): _mode(p) for p in files} == {p.name: 0o600 for p in files}
    finally:
        engine.dispose()
    assert _mode(settings.var_dir) == 0o700


def test_a_too_open_sqlite_database_is_restricted_when_the_service_starts(
    tmp_path: Path,
) -> None:
    settings = _sqlite_settings(tmp_path)
    migrate.upgrade(settings)
    database = settings.var_dir / "govern.db"
    # As an older release left it: readable by everyone, and a WAL open beside it.
    holder = sqlite3.connect(database)
    try:
        holder.execute("PRAGMA journal_mode=WAL")
        holder.execute("SELECT count(*) FROM api_key").fetchone()
        for path in _database_files(settings):
            path.chmod(0o644)
        with TestClient(create_app(settings)) as client:
            assert client.get("/readyz").status_code == 200
        assert {p.name: _mode(p) for p in _database_files(settings)} == {
            p.name: 0o600 for p in _database_files(settings)
        }
    finally:
        holder.close()


def test_artifacts_and_their_folders_are_private(tmp_path: Path) -> None:
    root = tmp_path / "var" / "artifacts"
    store = ArtifactStore(root)
    digest = store.put(b"model bytes")
    path = store.path_for(digest)
    assert [_mode(p) for p in (root, root / "sha256", path.parent)] == [0o700] * 3
    assert _mode(path) == 0o400
    assert store.get(digest) == b"model bytes"


def test_a_too_open_artifact_store_is_restricted_when_the_service_starts(tmp_path: Path) -> None:
    settings = _sqlite_settings(tmp_path).model_copy(update={"artifact_dir": tmp_path / "store"})
    migrate.upgrade(settings)
    root = settings.artifacts
    digest = "ab" * 32
    path = root / "sha256" / digest[:2] / digest
    path.parent.mkdir(parents=True, mode=0o755)
    path.write_bytes(b"x")
    path.chmod(0o444)  # as an older release wrote them
    for folder in (root, root / "sha256", path.parent):
        folder.chmod(0o755)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
    assert [_mode(p) for p in (root, root / "sha256", path.parent)] == [0o700] * 3
    assert _mode(path) == 0o400
