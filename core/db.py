"""The database module: metadata naming, engine construction and the per-request session.

The naming convention is set here, before any table is declared, so that every constraint has a
predictable name on both SQLite and PostgreSQL and migrations can refer to it.

An embedded SQLite database holds protected attributes, so its files are the service user's
alone: the file is created 0600 before SQLite opens it (SQLite gives its -wal and -shm files the
database file's mode), and every new connection takes group and other access away from any of
them that has it, e.g. a database made by an older release.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, SQLModel

from core.config import Settings

log = logging.getLogger("govern.db")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend.

    SQLite has no timezone type and hands back naive values; this type stores UTC and always
    returns an aware datetime, so comparisons never mix naive and aware values.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _sqlite_file(url: sa.URL) -> Path | None:
    """The database file of a SQLite URL; None for in-memory and URI databases."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _sqlite_files(database: Path) -> list[Path]:
    return [database] + [Path(f"{database}{suffix}") for suffix in ("-wal", "-shm", "-journal")]


def _create_private_file(path: Path) -> None:
    """Create an empty file readable by the owner only (SQLite takes an empty file as a new
    database), so the database is never briefly readable by others."""
    if path.exists():
        return
    # Another process may create it first; the connect hook then checks its mode.
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _restrict_to_owner(paths: list[Path]) -> None:
    """Remove group and other permissions from the files that exist among ``paths``."""
    for path in paths:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            try:
                os.chmod(path, mode & 0o700)
            except OSError as exc:
                log.warning("%s is readable by other users and cannot be restricted: %s", path, exc)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int, database: Path | None) -> None:
    @event.listens_for(engine, "do_connect")
    def _before_connect(*_args: Any) -> None:
        if database is not None:
            _create_private_file(database)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash; only an OS crash can lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()
        if database is not None:
            _restrict_to_owner(_sqlite_files(database))


def make_engine(settings: Settings) -> Engine:
    url = sa.make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        database = _sqlite_file(url)
        if database is not None:
            database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": settings.sqlite_busy_timeout_ms / 1000,
            },
            pool_pre_ping=True,
        )
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms, database)
        return engine
    return sa.create_engine(
        url,
        connect_args={"connect_timeout": settings.db_connect_timeout_s},
        pool_pre_ping=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, class_=Session, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error. Services only flush."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
