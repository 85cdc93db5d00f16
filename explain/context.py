"""What explaining one model version needs, loaded once and kept: the verified model, its
training rows (read again through DVC at the recorded commit, hashes checked), and the fitted
explainers.

The training rows are exactly the ones the model was fitted on: for a model govern trained, the
recorded split is replayed with the recorded seed and checked against the recorded digest of the
validation indices; for a model registered from outside, the whole registered data version.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from core.db import transaction
from core.errors import GovernanceError
from lineage import registry
from lineage import service as lineage_service
from lineage.input_schema import InputSchema, frame_from_table, positive_proba
from lineage.mitigation import is_reduction
from lineage.pipeline import (
    estimator_of,
    known_estimator_path,
    output_features,
    preprocessing_of,
)
from lineage.registration import trained_elsewhere
from lineage.spec import ESTIMATORS, TrainingSpec
from lineage.training import binary_target, indices_digest, split_frame
from serving.model_cache import LoadedModel

# alibi and shap's permutation explainer draw from NumPy's global generator after seeding it;
# holding this lock from the seeding to the end of the draw keeps concurrent explanations from
# disturbing each other's sequence, so each one is reproducible.
GLOBAL_RNG = threading.Lock()


class TrainingDataMismatch(GovernanceError):
    status_code = 409
    code = "data_integrity"


@dataclass
class ModelContext:
    model: LoadedModel
    estimator_class: str
    train: pd.DataFrame
    dataset: dict[str, Any]
    rows_source: str
    _cache: dict[Any, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def input_schema(self) -> InputSchema:
        return self.model.input_schema

    @property
    def kind(self) -> str:
        if is_reduction(self.estimator):
            return "other"  # a weighted vote of refitted estimators: model-agnostic explainers
        return ESTIMATORS.get(self.estimator_path, "other")

    @property
    def estimator_path(self) -> str:
        """The allowlisted class path of the estimator (for a model trained elsewhere the
        recorded class is the private module's, e.g. ``sklearn.ensemble._forest...``)."""
        return known_estimator_path(self.estimator) or self.estimator_class

    @property
    def preprocess(self) -> Any:
        return preprocessing_of(self.model.pipeline)

    @property
    def estimator(self) -> Any:
        return estimator_of(self.model.pipeline)

    @property
    def owners(self) -> list[str]:
        try:
            owners: list[str] = self.cached("owners", lambda: output_features(self.model.pipeline))
        except ValueError as exc:  # a Pipeline from elsewhere whose columns cannot be traced
            raise GovernanceError(
                f"attributions per feature are not available for this model: {exc}",
                status_code=422,
                code="not_explainable",
            ) from None
        return owners

    @property
    def positive_index(self) -> int:
        return self.input_schema.positive_index

    def cached(self, key: Any, build: Callable[[], Any]) -> Any:
        """Build once per context (an explainer, statistics); thread-safe."""
        with self._lock:
            if key not in self._cache:
                self._cache[key] = build()
            return self._cache[key]

    def scores(self, frame: pd.DataFrame) -> NDArray[np.float64]:
        """P(positive class) through the full Pipeline, for a batch."""
        return np.asarray(
            positive_proba(self.model.pipeline, frame, self.input_schema), dtype=float
        )

    def labels(self, scores: NDArray[np.float64]) -> list[Any]:
        return [self.model.label_for(float(s)) for s in scores]


def training_rows(version: Any, dataset: Any) -> tuple[pd.DataFrame, str]:
    frame = lineage_service.read_dataset_frame(dataset)
    schema = InputSchema.from_document(version.input_schema)
    names = schema.feature_names
    lineage = version.lineage or {}
    resolved = lineage.get("spec")
    if not resolved or trained_elsewhere(lineage):
        # A model trained elsewhere: its lineage has the declared spec (no estimator, no split
        # govern could replay), and its training rows are the registered data version.
        return frame_from_table(schema, frame[names]), "all rows of the registered data version"
    spec = TrainingSpec.model_validate(resolved)
    y, _classes = binary_target(spec, frame)
    train_idx, valid_idx = split_frame(spec, frame, y)
    recorded = version.lineage.get("split", {}).get("validation_indices_sha256")
    if recorded and indices_digest(valid_idx) != recorded:
        raise TrainingDataMismatch(
            "replaying the recorded split does not give the recorded validation rows",
            details={"recorded": recorded, "replayed": indices_digest(valid_idx)},
        )
    train = frame.iloc[train_idx][names]
    return (
        frame_from_table(schema, train).reset_index(drop=True),
        f"training split ({len(train_idx)} rows, split seed {spec.seeds.split})",
    )


class ContextCache:
    """Explain contexts by model version, least recently used dropped first."""

    def __init__(
        self, sessions: sessionmaker[Session], load: Callable[[str, int], LoadedModel], size: int
    ) -> None:
        self.sessions = sessions
        self.load = load
        self.size = size
        self._items: OrderedDict[tuple[str, int, str], ModelContext] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple[str, int, str], threading.Lock] = {}

    def get(self, name: str, version: int, sha256: str) -> ModelContext:
        key = (name, version, sha256)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                found = self._items.get(key)
            if found is not None:
                return found
            context = self._build(name, version, sha256)
            with self._lock:
                self._items[key] = context
                self._building.pop(key, None)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            return context

    def _build(self, name: str, version: int, sha256: str) -> ModelContext:
        model = self.load(name, version)
        if model.sha256 != sha256:
            raise TrainingDataMismatch(
                f"{name} v{version} is registered with artifact {model.sha256}, "
                f"but the decision names {sha256}",
                code="artifact_mismatch",
                details={"registered": model.sha256, "decision": sha256},
            )
        with transaction(self.sessions) as session:
            _model, found = registry.get_version(session=session, name=name, version=version)
            dataset = lineage_service.get_dataset(
                session=session, dataset_id=found.dataset_version_id
            )
            train, source = training_rows(found, dataset)
            estimator_class = found.estimator_class
            dataset_info = {
                "id": dataset.id,
                "name": dataset.name,
                "version": dataset.version,
                "commit": dataset.commit_sha,
                "sha256": dataset.sha256,
            }
        return ModelContext(
            model=model,
            estimator_class=estimator_class,
            train=train,
            dataset=dataset_info,
            rows_source=source,
        )
