"""Alembic, driven from the settings rather than from a working directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from core.config import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
FIX_COMMAND = "govern migrate  (or: make migrate)"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings), revision)


def head_revisions() -> set[str]:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return set(script.get_heads())


@dataclass(frozen=True)
class SchemaState:
    current: set[str]
    heads: set[str]

    @property
    def at_head(self) -> bool:
        return self.current == self.heads

    def describe(self) -> str:
        current = ", ".join(sorted(self.current)) or "empty (no migrations applied)"
        heads = ", ".join(sorted(self.heads))
        return f"database schema is at {current}; this build needs {heads}. Run: {FIX_COMMAND}"


def schema_state(engine: Engine) -> SchemaState:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        current = set(context.get_current_heads())
    return SchemaState(current=current, heads=head_revisions())


class SchemaNotAtHead(RuntimeError):
    pass


def ensure_at_head(engine: Engine) -> None:
    state = schema_state(engine)
    if not state.at_head:
        raise SchemaNotAtHead(state.describe())
