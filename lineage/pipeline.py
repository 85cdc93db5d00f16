"""Build the scikit-learn Pipeline a spec describes. Pure: no I/O, no database."""

from __future__ import annotations

import math
from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    KBinsDiscretizer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from lineage.mitigation import ReductionClassifier, is_reduction
from lineage.scorecard import points_table
from lineage.spec import (
    DETERMINISTIC,
    ESTIMATORS,
    CategoricalTransform,
    Feature,
    FeatureType,
    NumericTransform,
    TrainingSpec,
    category_text,
    import_estimator,
)
from lineage.woe import WoeBinner

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
    if transform.bins is not None:
        steps.append(
            (
                "coarsen",
                KBinsDiscretizer(
                    n_bins=transform.bins, encode="ordinal", strategy="quantile", subsample=None
                ),
            )
        )
    if transform.scale != "none":
        steps.append(("scale", _SCALERS[transform.scale]()))
    return steps


def _categorical_steps(
    transform: CategoricalTransform, categories: list[Any] | None
) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = []
    if transform.impute != "none":
        kwargs: dict[str, Any] = {"strategy": transform.impute}
        if transform.impute == "constant":
            kwargs["fill_value"] = transform.fill_value
        steps.append(("impute", SimpleImputer(**kwargs)))
    # The model sees each category as its text (``category_text``), as the frames give it.
    keys = None if categories is None else {category_text(c) for c in categories}
    cats: Any = "auto" if keys is None else [sorted({*keys, transform.fill_value})]
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
    if spec.scorecard is not None:
        return _scorecard_pipeline(spec)
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
    return Pipeline([("preprocess", preprocess), ("model", _estimator(spec))])


def _estimator(spec: TrainingSpec) -> Any:
    """The spec's estimator, with its deterministic settings and seed (and its reduction)."""
    estimator_class = import_estimator(spec.estimator.class_path)
    params = {**DETERMINISTIC.get(spec.estimator.class_path, {}), **spec.estimator.params}
    if "random_state" in estimator_class().get_params():
        params["random_state"] = spec.seeds.estimator
    model: Any = estimator_class(**params)
    if spec.mitigation is not None:
        model = ReductionClassifier(
            model,
            constraint=spec.mitigation.constraint,
            eps=spec.mitigation.eps,
            max_iter=spec.mitigation.max_iter,
        )
    return model


def _scorecard_pipeline(spec: TrainingSpec) -> Pipeline:
    """Numeric and categorical features each binned by one ``WoeBinner``, then the regression."""
    card = spec.scorecard
    assert card is not None
    branches = []
    for kind in ("numeric", "categorical"):
        columns = [f.name for f in spec.features if f.type.value == kind]
        if columns:
            binner = WoeBinner(
                kind=kind,
                method=card.binning,
                max_bins=card.max_bins,
                min_bin_share=card.min_bin_share,
            )
            branches.append(("num" if kind == "numeric" else "cat", binner, columns))
    preprocess = ColumnTransformer(branches, remainder="drop", verbose_feature_names_out=True)
    return Pipeline([("preprocess", preprocess), ("model", _estimator(spec))])


def scorecard_of(pipeline: Pipeline, spec: TrainingSpec, favourable_is_positive: bool) -> Any:
    """The fitted scorecard's points table (``lineage.scorecard.Scorecard``), None for a model
    that is not one."""
    card = spec.scorecard
    if card is None:
        return None
    preprocess: ColumnTransformer = pipeline.named_steps["preprocess"]
    names: list[str] = []
    binned: list[Any] = []
    for _name, binner, columns in preprocess.transformers_:
        if isinstance(binner, WoeBinner):
            names.extend(columns)
            binned.extend(binner.bins_)
    model = pipeline.named_steps["model"]
    return points_table(
        names,
        binned,
        [float(c) for c in model.coef_[0]],
        float(model.intercept_[0]),
        favourable_is_positive=favourable_is_positive,
        binning=card.binning,
        pdo=card.pdo,
        base_score=card.base_score,
        base_odds=card.base_odds,
    )


def _per_column(encoder: Any, n_columns: int) -> Any:
    """Fixed categories are given per feature; a group of n features repeats the list."""
    categories = encoder.get_params()["categories"]
    if categories == "auto":
        return encoder
    return encoder.set_params(categories=list(categories) * n_columns)


def estimator_of(pipeline: Any) -> Any:
    """The estimator: the last step of a Pipeline (``model`` in govern's), or the model itself."""
    return pipeline.steps[-1][1] if isinstance(pipeline, Pipeline) else pipeline


def preprocessing_of(pipeline: Any) -> Any:
    """Everything before the estimator, as one transformer (identity for a bare estimator)."""
    if isinstance(pipeline, Pipeline) and len(pipeline.steps) > 1:
        return pipeline.named_steps.get("preprocess") or pipeline[:-1]
    from sklearn.preprocessing import FunctionTransformer

    return FunctionTransformer()


def known_estimator_path(estimator: Any) -> str | None:
    """The allowlisted class path (``lineage.spec.ESTIMATORS``) this estimator is exactly."""
    for path in ESTIMATORS:
        if type(estimator) is import_estimator(path):
            return path
    return None


def _column_transformer(preprocess: Any) -> ColumnTransformer | None:
    if isinstance(preprocess, ColumnTransformer):
        return preprocess
    if isinstance(preprocess, Pipeline):
        found = [s for _n, s in preprocess.steps if isinstance(s, ColumnTransformer)]
        if len(found) == 1 and preprocess.steps[0][1] is found[0]:
            # Steps after the ColumnTransformer must keep its columns one for one.
            rest = preprocess.steps[1:]
            if all(not hasattr(s, "get_feature_names_out") or _keeps_width(s) for _n, s in rest):
                return found[0]
    return None


def _keeps_width(step: Any) -> bool:
    from sklearn.impute import SimpleImputer as _Imputer

    return isinstance(step, MinMaxScaler | StandardScaler | RobustScaler) or (
        isinstance(step, _Imputer) and not step.add_indicator
    )


def _encoder_of(transformer: Any) -> Any:
    if isinstance(transformer, OneHotEncoder):
        return transformer
    if isinstance(transformer, Pipeline):
        found = [s for _n, s in transformer.steps if isinstance(s, OneHotEncoder)]
        return found[0] if found else None
    return None


def output_features(pipeline: Pipeline) -> list[str]:
    """For every column the preprocessor outputs, the spec feature it came from, in order.

    For a Pipeline trained elsewhere, its first ColumnTransformer is read the same way (one-hot
    columns belong to their input column; every other transformer keeps one column per input).
    """
    steps = preprocessing_of(pipeline)
    preprocess = _column_transformer(steps)
    if preprocess is None:
        # A Pipeline trained elsewhere may scale or impute its columns without a
        # ColumnTransformer: each output column is then its input column.
        chain = [s for _n, s in steps.steps] if isinstance(steps, Pipeline) else [steps]
        names = getattr(chain[0], "feature_names_in_", None)
        if names is not None and all(_keeps_width(s) for s in chain):
            return [str(n) for n in names]
        raise ValueError("the model's preprocessing does not map its columns to its features")
    owners: list[str] = []
    for _name, transformer, columns in preprocess.transformers_:
        if transformer == "drop" or not len(columns):
            continue
        encoder = _encoder_of(transformer)
        if isinstance(encoder, OneHotEncoder):
            for column, cats in zip(columns, encoder.categories_, strict=True):
                owners.extend([column] * len(cats))
        else:
            owners.extend(columns)
    return owners


def missing_value_policy(pipeline: Pipeline, spec: TrainingSpec) -> dict[str, dict[str, Any]]:
    """Per feature, what the fitted model does with a missing value: the imputation strategy
    and the value it fills in (learned at fit, e.g. the training median), or "none" when the
    estimator receives the gap itself."""
    preprocess: ColumnTransformer = pipeline.named_steps["preprocess"]
    if spec.scorecard is not None:  # a missing value is a bin of its own, with its own points
        return {f.name: {"impute": "own_bin"} for f in spec.features}
    filled: dict[str, Any] = {}
    for _name, transformer, columns in preprocess.transformers_:
        imputer = (
            transformer.named_steps.get("impute") if isinstance(transformer, Pipeline) else None
        )
        if isinstance(imputer, SimpleImputer):
            for column, value in zip(columns, imputer.statistics_, strict=True):
                filled[column] = value.item() if hasattr(value, "item") else value
    policy = {}
    for feature in spec.features:
        transform = spec.transform_for(feature)
        entry: dict[str, Any] = {"impute": transform.impute}
        if feature.name in filled:
            entry["fill_value"] = filled[feature.name]
        policy[feature.name] = entry
    return policy


def margin(estimator: Any, x: Any) -> Any:
    """The estimator's log-odds for ``classes_[1]``: what a gradient-boosting tree explainer's
    values add up to. None for an estimator without one."""
    if hasattr(estimator, "decision_function"):
        return estimator.decision_function(x)
    path = known_estimator_path(estimator)
    if path == "xgboost.XGBClassifier":
        return estimator.predict(x, output_margin=True)
    if path == "lightgbm.LGBMClassifier":
        return estimator.predict(x, raw_score=True)
    return None


def estimator_params(model: Any) -> dict[str, Any]:
    """The fitted model's estimator parameters, as lineage records them: for a reduction, its
    estimator's (the reduction's own settings are the spec's ``mitigation``); JSON-safe."""
    inner = model.estimator if is_reduction(model) else model
    return {name: _json_number(value) for name, value in inner.get_params(deep=False).items()}


def _json_number(value: Any) -> Any:
    """A parameter as JSON can hold it: a non-finite number (XGBoost's ``missing=nan``) as its
    text, which PostgreSQL's JSON and a rebuild's comparison both take as it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
