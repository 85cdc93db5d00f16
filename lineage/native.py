"""XGBoost and LightGBM models uploaded in their libraries' own formats: XGBoost's JSON or UBJSON,
LightGBM's text model. Both are data (trees and their parameters), never code, so loading them
cannot run anything the uploader wrote, unlike a pickle. The model is put behind a passthrough
of the declared features, in their order, so govern serves, explains and audits it like any
Pipeline; the upload itself is kept in the artifact store beside govern's copy.

Such a model takes numbers: every declared feature must be numeric (encode categories before
training, or upload a skops Pipeline with its encoder). Pure but for the libraries' loaders.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from core.errors import InvalidInput
from lineage.spec import Feature, FeatureType

FORMATS = ("xgboost-json", "xgboost-ubj", "lightgbm-text")


def _refuse(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details=[{"field": field, "message": message}])


def _xgboost(fmt: str, content: bytes) -> tuple[Any, int, list[str] | None]:
    import xgboost

    if fmt == "xgboost-json" and not content.lstrip().startswith(b"{"):
        raise _refuse("artifact", "not an XGBoost JSON model (it does not start with '{')")
    model = xgboost.XGBClassifier()
    try:
        model.load_model(bytearray(content))
    except (xgboost.core.XGBoostError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise _refuse("artifact", f"not a readable XGBoost model ({first})") from None
    objective = model.get_params().get("objective")
    if objective != "binary:logistic":
        raise _refuse(
            "artifact", f"a binary classifier (binary:logistic) is needed, not {objective}"
        )
    names = model.get_booster().feature_names
    return model, int(model.n_features_in_), list(names) if names is not None else None


def _lightgbm(content: bytes) -> tuple[Any, int, list[str] | None]:
    import lightgbm

    try:
        booster = lightgbm.Booster(model_str=content.decode("utf-8"))
    except (UnicodeDecodeError, lightgbm.basic.LightGBMError, ValueError) as exc:
        raise _refuse(
            "artifact", f"not a readable LightGBM text model ({type(exc).__name__})"
        ) from None
    objective = str(booster.params.get("objective", "")).split()[0] if booster.params else ""
    if objective != "binary":
        raise _refuse(
            "artifact", f"a binary classifier (objective binary) is needed, not {objective}"
        )
    model = lightgbm.LGBMClassifier(objective="binary")
    # The scikit-learn face of a trained Booster, as LGBMClassifier.fit leaves it (4.7.0).
    n = booster.num_feature()
    model._Booster = booster
    model._n_features = model._n_features_in = n
    model._classes = np.array([0, 1])
    model._n_classes = 2
    model._objective = "binary"
    model.fitted_ = True
    return model, n, booster.feature_name()


def generic_names(names: list[str] | None) -> bool:
    """Names a library makes up when it was given none (f0, f1, ... or Column_0, ...)."""
    return not names or all(n in (f"f{i}", f"Column_{i}") for i, n in enumerate(names))


def load_native(fmt: str, content: bytes, features: list[Feature]) -> Pipeline:
    """The uploaded model behind a passthrough of the declared features; a 422 naming the field
    for a categorical feature, a count or names that do not match, or an unreadable file."""
    categorical = [f.name for f in features if f.type is not FeatureType.numeric]
    if categorical:
        raise _refuse(
            "features",
            f"an {fmt} model takes numbers; {categorical} are categorical: encode them before "
            "training and declare the codes numeric, or upload a skops Pipeline with its encoder",
        )
    if fmt.startswith("xgboost"):
        model, n, names = _xgboost(fmt, content)
    else:
        model, n, names = _lightgbm(content)
    declared = [f.name for f in features]
    if n != len(declared):
        raise _refuse("features", f"the model takes {n} features; {len(declared)} are declared")
    if not generic_names(names) and list(names or []) != declared:
        raise _refuse(
            "features",
            f"the model was trained on {names}, in that order; declared: {declared}",
        )
    passthrough = ColumnTransformer([("num", "passthrough", declared)], remainder="drop")
    pipeline = Pipeline([("preprocess", passthrough), ("model", model)])
    # A passthrough learns nothing but the columns it is given: fit it on their names alone.
    passthrough.fit(pd.DataFrame({name: [0.0] for name in declared}))
    return pipeline
