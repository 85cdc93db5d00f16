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
    """One ColumnTransformer branch per feature (so every output column maps back to exactly one
    feature, which SHAP aggregation relies on), then the estimator, seeded from ``seeds``."""
    branches = []
    for feature in spec.features:
        steps = _steps_for(spec, feature)
        transformer: Any = Pipeline(steps) if steps else "passthrough"
        branches.append((feature.name, transformer, [feature.name]))
    preprocess = ColumnTransformer(branches, remainder="drop", verbose_feature_names_out=True)
    estimator_class = import_estimator(spec.estimator.class_path)
    params = dict(spec.estimator.params)
    if "random_state" in estimator_class().get_params():
        params["random_state"] = spec.seeds.estimator
    return Pipeline([("preprocess", preprocess), ("model", estimator_class(**params))])


def output_feature_map(pipeline: Pipeline) -> dict[str, str]:
    """Transformed column name -> the spec feature it came from."""
    preprocess: ColumnTransformer = pipeline.named_steps["preprocess"]
    mapping = {}
    for name in preprocess.get_feature_names_out():
        branch, _, _ = str(name).partition("__")
        mapping[str(name)] = branch
    return mapping
