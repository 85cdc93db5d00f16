"""Imports every domain's tables so that the metadata is complete (for Alembic and tests)."""

from sqlmodel import SQLModel

import governance.db  # noqa: F401  (sets the naming convention first)
from governance.auth import models as auth_models
from lineage import models as lineage_models

metadata = SQLModel.metadata

__all__ = ["auth_models", "lineage_models", "metadata"]
