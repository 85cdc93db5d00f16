"""Alembic environment: the URL comes from govern's settings, never from alembic.ini."""

from __future__ import annotations

from alembic import context

from core.config import Settings, get_settings
from core.db import make_engine
from governance.tables import metadata

config = context.config


def _settings() -> Settings:
    settings = config.attributes.get("settings")
    return settings if isinstance(settings, Settings) else get_settings()


def run_migrations_offline() -> None:
    settings = _settings()
    context.configure(
        url=settings.database_url,
        target_metadata=metadata,
        literal_binds=True,
        compare_type=True,
        render_as_batch=settings.is_sqlite,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    settings = _settings()
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                compare_type=True,
                render_as_batch=settings.is_sqlite,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
