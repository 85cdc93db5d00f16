"""Loaded models, by artifact sha256. A model is loaded only from bytes that match the registry."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from lineage.artifacts import ArtifactStore
from lineage.input_schema import InputSchema, positive_proba, to_frame
from lineage.models import ModelVersion
from lineage.outliers import Detector, detector_of
from lineage.pipeline import preprocessing_of
from serving.fastpath import Compiled, compile_or_reason, probe_rows

log = logging.getLogger("govern.serving")


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    sha256: str
    pipeline: Any
    input_schema: InputSchema
    fast: Compiled | None = None
    detector: Detector | None = None
    scoring: str = "pipeline"  # "compiled", or why it is scored through its Pipeline

    def scores(self, records: list[dict[str, Any]]) -> list[float]:
        if self.fast is not None:
            return [float(p) for p in self.fast(records)]
        frame = to_frame(self.input_schema, records)
        return [float(p) for p in positive_proba(self.pipeline, frame, self.input_schema)]

    def label_for(self, score: float) -> Any:
        return self.input_schema.label_for(score)

    def outlier_fields(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per record, ``outlier_score`` and ``is_outlier`` for the log; {} without a detector."""
        if self.detector is None:
            return [{} for _ in records]
        fields = []
        for distance in self.detector.scores(records):
            score = round(float(distance), 6)
            fields.append({"outlier_score": score, "is_outlier": self.detector.is_outlier(score)})
        return fields

    def transform(self, records: list[dict[str, Any]]) -> Any:
        """The estimator's input for these records (the Pipeline's preprocessing output)."""
        if self.fast is not None:
            return self.fast.transform(records)
        return preprocessing_of(self.pipeline).transform(to_frame(self.input_schema, records))


def fast_path_or_reason(pipeline: Any, schema: InputSchema) -> tuple[Compiled | None, str]:
    """The compiled path, only if it gives exactly the Pipeline's numbers on probe rows, in a
    batch and one row at a time, for the preprocessed features as for the scores; otherwise
    None, and why the model is scored through its Pipeline."""
    fast, reason = compile_or_reason(pipeline, schema)
    if fast is None:
        return None, reason
    probe = probe_rows(schema)
    frame = to_frame(schema, probe)
    expected = positive_proba(pipeline, frame, schema)
    if not np.array_equal(fast(probe), expected):
        return None, "not compiled: its scores differ from the Pipeline's on the probe rows"
    preprocess = pipeline.named_steps.get("preprocess")
    if preprocess is None or not np.array_equal(
        fast.transform(probe),
        np.asarray(preprocess.transform(frame), dtype=np.float64),
        equal_nan=True,
    ):
        return None, "not compiled: its features differ from the preprocessing's on the probe rows"
    for i in range(0, len(probe), 9):
        single = positive_proba(pipeline, to_frame(schema, [probe[i]]), schema)
        if not np.array_equal(fast([probe[i]]), single) or single[0] != expected[i]:
            return None, "not compiled: one row at a time scores differently from a batch"
    return fast, "compiled"


class ModelCache:
    def __init__(self, store: ArtifactStore, size: int) -> None:
        self.store = store
        self.size = size
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._versions: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()

    def by_version(self, name: str, version: int) -> LoadedModel | None:
        with self._lock:
            key = self._versions.get((name, version))
            model = self._models.get(key) if key else None
            if model is not None and key is not None:
                self._models.move_to_end(key)
            return model

    def get(self, name: str, version: ModelVersion) -> LoadedModel:
        key = f"{version.artifact_sha256}:{name}:{version.version}"
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
        pipeline = self.store.load_model(version.artifact_sha256)
        schema = InputSchema.from_document(version.input_schema)
        fast, scoring = fast_path_or_reason(pipeline, schema)
        if fast is None:
            log.info("%s v%s is scored through its Pipeline (%s)", name, version.version, scoring)
        loaded = LoadedModel(
            name=name,
            version=version.version,
            sha256=version.artifact_sha256,
            pipeline=pipeline,
            input_schema=schema,
            fast=fast,
            scoring=scoring,
            detector=detector_of(version.lineage),
        )
        with self._lock:
            self._models[key] = loaded
            self._versions[(name, version.version)] = key
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return loaded
