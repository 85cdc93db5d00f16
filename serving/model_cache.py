"""Loaded models, by artifact sha256. A model is loaded only from bytes that match the registry."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from lineage.artifacts import ArtifactStore
from lineage.models import ModelVersion
from lineage.schema import positive_proba, to_frame


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    sha256: str
    pipeline: Any
    schema: dict[str, Any]

    @property
    def threshold(self) -> float:
        return float(self.schema.get("threshold", 0.5))

    def scores(self, records: list[dict[str, Any]]) -> list[float]:
        return [
            float(p)
            for p in positive_proba(self.pipeline, to_frame(self.schema, records), self.schema)
        ]

    def label_for(self, score: float) -> Any:
        negative, positive = self.schema["classes"]
        return positive if score >= self.threshold else negative

    @property
    def protected(self) -> list[str]:
        return [p["name"] for p in self.schema.get("protected", [])]


class ModelCache:
    def __init__(self, store: ArtifactStore, size: int) -> None:
        self.store = store
        self.size = size
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, version: ModelVersion) -> LoadedModel:
        key = f"{version.artifact_sha256}:{name}:{version.version}"
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
        loaded = LoadedModel(
            name=name,
            version=version.version,
            sha256=version.artifact_sha256,
            pipeline=self.store.load_model(version.artifact_sha256),
            schema=version.input_schema,
        )
        with self._lock:
            self._models[key] = loaded
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return loaded
