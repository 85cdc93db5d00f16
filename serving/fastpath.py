"""A compiled, pandas-free scoring path for the fitted Pipelines govern builds. Pure.

A one-row ``Pipeline.predict_proba`` spends most of its time in pandas inside the
ColumnTransformer. This replays the fitted transformers' arithmetic on plain NumPy arrays, in the
same order of operations, so the output is the same to the bit; then calls the fitted estimator
directly. It supports the transformers govern's specs produce. Anything else, or any difference
found when the compiled path is checked against the Pipeline on probe rows at load time, means
the model is served through the Pipeline itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)
from threadpoolctl import ThreadpoolController

from lineage.input_schema import InputSchema, category_key

Rows = Sequence[Mapping[str, Any]]
# One controller, made once: building one per call (threadpool_limits) costs milliseconds.
THREADS = ThreadpoolController()
Step = Callable[[NDArray[Any]], NDArray[Any]]


class Unsupported(Exception):
    pass


def _imputer(step: SimpleImputer, numeric: bool) -> Step:
    if step.add_indicator or not (
        isinstance(step.missing_values, float) and np.isnan(step.missing_values)
    ):
        raise Unsupported("imputer options")
    fill = step.statistics_

    def impute(x: NDArray[Any]) -> NDArray[Any]:
        if numeric:
            missing = np.isnan(x)
            if missing.any():
                x = np.where(missing, fill.astype(np.float64), x)
            return x
        out = x.copy()
        for j in range(out.shape[1]):
            col = out[:, j]
            mask = np.array(
                [v is None or (isinstance(v, float) and np.isnan(v)) for v in col], dtype=bool
            )
            col[mask] = fill[j]
        return out

    return impute


def _center_scale(center: Any, scale: Any) -> Step:
    """StandardScaler and RobustScaler both subtract a centre, then divide by a scale, in place."""

    def transform(x: NDArray[Any]) -> NDArray[Any]:
        x = np.array(x, dtype=np.float64)
        if center is not None:
            x -= center
        if scale is not None:
            x /= scale
        return x

    return transform


def _scaler(step: Any) -> Step:
    if isinstance(step, StandardScaler):
        return _center_scale(
            step.mean_ if step.with_mean else None, step.scale_ if step.with_std else None
        )
    if isinstance(step, RobustScaler):
        return _center_scale(
            step.center_ if step.with_centering else None,
            step.scale_ if step.with_scaling else None,
        )
    if isinstance(step, MinMaxScaler):
        if step.clip:
            raise Unsupported("clip")

        def minmax(x: NDArray[Any]) -> NDArray[Any]:
            x = np.array(x, dtype=np.float64)
            x *= step.scale_
            x += step.min_
            return x

        return minmax
    raise Unsupported(type(step).__name__)


def _encoder(step: Any) -> Step:
    if isinstance(step, OneHotEncoder):
        if (
            step.drop_idx_ is not None
            or getattr(step, "_infrequent_enabled", False)
            or step.handle_unknown != "ignore"
        ):
            raise Unsupported("one-hot options")
        lookups = [{c: i for i, c in enumerate(cats)} for cats in step.categories_]
        widths = [len(c) for c in step.categories_]
        offsets = np.cumsum([0, *widths[:-1]])
        dtype = step.dtype

        def onehot(x: NDArray[Any]) -> NDArray[Any]:
            out = np.zeros((x.shape[0], sum(widths)), dtype=dtype)
            for j, lookup in enumerate(lookups):
                for i, value in enumerate(x[:, j]):
                    k = lookup.get(value)
                    if k is not None:
                        out[i, offsets[j] + k] = 1
            return out

        return onehot
    if isinstance(step, OrdinalEncoder):
        if step.handle_unknown != "use_encoded_value" or getattr(
            step, "_infrequent_enabled", False
        ):
            raise Unsupported("ordinal options")
        ordinal_lookups = [{c: float(i) for i, c in enumerate(cats)} for cats in step.categories_]
        unknown = float(step.unknown_value)

        def ordinal(x: NDArray[Any]) -> NDArray[Any]:
            out = np.empty(x.shape, dtype=step.dtype)
            for j, lookup in enumerate(ordinal_lookups):
                for i, value in enumerate(x[:, j]):
                    out[i, j] = lookup.get(value, unknown)
            return out

        return ordinal
    raise Unsupported(type(step).__name__)


def _branch(transformer: Any, numeric: bool) -> list[Step]:
    if transformer == "passthrough":
        if not numeric:
            raise Unsupported("categorical passthrough")
        return []
    if not isinstance(transformer, Pipeline):
        raise Unsupported(type(transformer).__name__)
    steps: list[Step] = []
    for _name, step in transformer.steps:
        if isinstance(step, SimpleImputer):
            steps.append(_imputer(step, numeric))
        elif numeric and isinstance(step, MinMaxScaler | StandardScaler | RobustScaler):
            steps.append(_scaler(step))
        elif numeric:
            raise Unsupported(type(step).__name__)
        else:
            steps.append(_encoder(step))
    return steps


def compile_pipeline(pipeline: Any, schema: InputSchema) -> Compiled | None:
    """A function rows -> P(positive), or None when this Pipeline is not one we can compile."""
    return compile_or_reason(pipeline, schema)[0]


def compile_or_reason(pipeline: Any, schema: InputSchema) -> tuple[Compiled | None, str]:
    """The compiled path, or None and why not (in words, for the log)."""
    try:
        return _compile(pipeline, schema), "compiled"
    except Unsupported as exc:
        return None, f"not compiled: unsupported {exc}"
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        return None, f"not compiled: {type(exc).__name__}: {exc}"


def _compile(pipeline: Any, schema: InputSchema) -> Compiled:
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise Unsupported("not preprocess + model")
    preprocess, model = pipeline.steps[0][1], pipeline.steps[1][1]
    if not isinstance(preprocess, ColumnTransformer) or preprocess.sparse_output_:
        raise Unsupported("preprocessor")
    types = {f.name: f.type for f in schema.features}
    branches = []
    for name, transformer, columns in preprocess.transformers_:
        if name == "remainder":
            if transformer != "drop":
                raise Unsupported("remainder")
            continue
        numeric = {types[c] for c in columns} == {"numeric"}
        if not numeric and {types[c] for c in columns} != {"categorical"}:
            raise Unsupported("mixed branch")
        branches.append((list(columns), numeric, _branch(transformer, numeric)))
    column = schema.positive_index

    def transform(rows: Rows) -> NDArray[np.float64]:
        parts = []
        for columns, numeric, steps in branches:
            if numeric:
                x: NDArray[Any] = np.array(
                    [[_number(r.get(c)) for c in columns] for r in rows], dtype=np.float64
                )
            else:
                x = np.array([[_category(r.get(c)) for c in columns] for r in rows], dtype=object)
            for step in steps:
                x = step(x)
            parts.append(np.asarray(x, dtype=np.float64))
        return np.hstack(parts)

    def score(rows: Rows) -> NDArray[np.float64]:
        features = transform(rows)
        # Rows are scored independently, so one thread gives the same numbers without the
        # cost of waking a thread team for a single row.
        with THREADS.limit(limits=1, user_api="openmp"):
            proba = model.predict_proba(features)
        return np.asarray(proba[:, column], dtype=np.float64)

    return Compiled(score, transform)


def _number(value: Any) -> float:
    return np.nan if value is None else float(value)


def _category(value: Any) -> Any:
    """As ``to_frame`` gives it: the category's text, a missing value as None."""
    return None if value is None else category_key(value)


class Compiled:
    """The compiled path: call it for P(positive); ``transform`` gives the estimator's input."""

    def __init__(
        self,
        score: Callable[[Rows], NDArray[np.float64]],
        transform: Callable[[Rows], NDArray[np.float64]],
    ) -> None:
        self.score = score
        self.transform = transform

    def __call__(self, rows: Rows) -> NDArray[np.float64]:
        return self.score(rows)


def probe_rows(schema: InputSchema, n: int = 64, seed: int = 0) -> list[dict[str, Any]]:
    """Rows spanning the recorded ranges and every known category, plus unseen values."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row: dict[str, Any] = {}
        for feature in schema.features:
            if feature.nullable and i % 5 == 1:
                row[feature.name] = None
            elif feature.numeric:
                low, high = feature.observed_range or feature.bounds or [0.0, 1.0]
                row[feature.name] = float(rng.uniform(low, high)) if high > low else float(low)
            else:
                cats = list(feature.categories or ["x"])
                row[feature.name] = cats[i % len(cats)] if i % 7 else "__unseen__"
        rows.append(row)
    return rows
