"""Imports every domain's tables so that the metadata is complete (for Alembic and tests)."""

from sqlmodel import SQLModel

import core.db  # noqa: F401  (sets the naming convention first)
from core.audit import models as audit_models
from core.auth import models as auth_models
from explain import models as explain_models
from governance.casework import models as casework_models
from governance.changes import models as changes_models
from governance.experiments import models as experiment_models
from governance.lda import models as lda_models
from governance.promotion import models as promotion_models
from lineage import models as lineage_models
from serving import models as serving_models

metadata = SQLModel.metadata

__all__ = [
    "audit_models",
    "auth_models",
    "casework_models",
    "changes_models",
    "experiment_models",
    "explain_models",
    "lda_models",
    "lineage_models",
    "metadata",
    "promotion_models",
    "serving_models",
]
