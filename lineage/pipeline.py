"""Build the scikit-learn Pipeline a spec describes. Pure: no I/O, no database."""

from __future__ import annotations

from typing import Any

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

from lineage.spec import (
    CategoricalTransform,
    Feature,
    FeatureType,
    NumericTransform,
    TrainingSpec,
    import_estimator,
)

_SCALERS: dict[str, type[Any]] = {
    "standard": StandardScaler,
    "minmax": MinMaxScaler,
    "robust": RobustScaler,
}


def _numeric_steps(transform: NumericTransform) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = []
    if transform.impute != "none":
        kwargs: dict[str, Any] = {"strategy": transform.impute}
        if transform.impute == "constant":
            kwargs["fill_value"] = 0.0 if transform.fill_value is None else transform.fill_value
        steps.append(("impute", SimpleImputer(**kwargs)))
    if transform.scale != "none":
        steps.append(("scale", _SCALERS[transform.scale]()))
    return steps


def _categorical_steps(
    transform: CategoricalTransform, categories: list[str] | None
) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = []
    if transform.impute != "none":
        kwargs: dict[str, Any] = {"strategy": transform.impute}
        if transform.impute == "constant":
            kwargs["fill_value"] = transform.fill_value
        steps.append(("impute", SimpleImputer(**kwargs)))
    cats: Any = "auto" if categories is None else [sorted({*categories, transform.fill_value})]
    if transform.encode == "onehot":
        encoder: Any = OneHotEncoder(categories=cats, handle_unknown="ignore", sparse_output=False)
    else:
        encoder = OrdinalEncoder(
            categories=cats, handle_unknown="use_encoded_value", unknown_value=-1
        )
    steps.append(("encode", encoder))
    return steps


def _steps_for(spec: TrainingSpec, feature: Feature) -> list[tuple[str, Any]]:
    transform = spec.transform_for(feature)
    if feature.type is FeatureType.numeric:
        assert isinstance(transform, NumericTransform)
        return _numeric_steps(transform)
    assert isinstance(transform, CategoricalTransform)
    return _categorical_steps(transform, feature.categories)


def build_pipeline(spec: TrainingSpec) -> Pipeline:
    """Features that share a type and a transform share one ColumnTransformer branch (fewer
    branches make a one-row transform several times faster), then the estimator, seeded from
    ``seeds``. ``output_features`` maps every output column back to its feature."""
    groups: dict[str, tuple[list[tuple[str, Any]], list[str]]] = {}
    for feature in spec.features:
        transform = spec.transform_for(feature)
        key = f"{feature.type.value}:{transform.model_dump_json()}:{feature.categories}"
        if key not in groups:
            groups[key] = (_steps_for(spec, feature), [])
        groups[key][1].append(feature.name)
    branches = []
    counters: dict[str, int] = {}
    for key, (steps, columns) in groups.items():
        kind = "num" if key.startswith("numeric") else "cat"
        counters[kind] = counters.get(kind, 0) + 1
        name = kind if counters[kind] == 1 else f"{kind}{counters[kind]}"
        transformer: Any = Pipeline(steps) if steps else "passthrough"
        if steps and any(step == "encode" for step, _ in steps):
            transformer = Pipeline(
                [(n, _per_column(t, len(columns)) if n == "encode" else t) for n, t in steps]
            )
        branches.append((name, transformer, columns))
    preprocess = ColumnTransformer(branches, remainder="drop", verbose_feature_names_out=True)
    estimator_class = import_estimator(spec.estimator.class_path)
    params = dict(spec.estimator.params)
    if "random_state" in estimator_class().get_params():
        params["random_state"] = spec.seeds.estimator
    return Pipeline([("preprocess", preprocess), ("model", estimator_class(**params))])


def _per_column(encoder: Any, n_columns: int) -> Any:
    """Fixed categories are given per feature; a group of n features repeats the list."""
    categories = encoder.get_params()["categories"]
    if categories == "auto":
        return encoder
    return encoder.set_params(categories=list(categories) * n_columns)


def output_features(pipeline: Pipeline) -> list[str]:
    """For every column the preprocessor outputs, the spec feature it came from, in order."""
    preprocess: ColumnTransformer = pipeline.named_steps["preprocess"]
    owners: list[str] = []
    for _name, transformer, columns in preprocess.transformers_:
        if transformer == "drop" or not len(columns):
            continue
        encoder = (
            transformer.named_steps.get("encode") if isinstance(transformer, Pipeline) else None
        )
        if isinstance(encoder, OneHotEncoder):
            for column, cats in zip(columns, encoder.categories_, strict=True):
                owners.extend([column] * len(cats))
        else:
            owners.extend(columns)
    return owners
