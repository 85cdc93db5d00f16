"""Rebuilding a version imported from MLflow: re-running the training the run recorded.

MLflow records what was trained (the estimator, its params, the seed), on what (the dataset
input, proven to be a govern data version by its digest at import) and with what (the
environment). govern re-runs exactly that: the estimator's class with the run's params, fitted
on every row of the data version, the recorded features in their order, the target as 1 for
the positive class. Then it compares:

* XGBoost and LightGBM: the refitted model saved in the imported file's own format, byte for
  byte against the file MLflow held (kept in govern's store at import);
* a scikit-learn Pipeline (skops): a clone of the imported one, with all its hyperparameters,
  fitted again; its fingerprint against the imported model's.

Equal: ``identical``. Otherwise every row of the data version and every logged decision is
scored by both, as a spec's rebuild does. A version whose data is ``unverified`` is not
rebuildable: govern cannot know which rows it was trained on.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from lineage.artifacts import ArtifactStore
from lineage.fingerprint import fingerprint
from lineage.input_schema import InputSchema, frame_from_table, positive_proba, same_class
from lineage.mlflow_import import mlflow_digest, parse_param
from lineage.native import FORMATS, generic_names, load_native
from lineage.pipeline import estimator_of
from lineage.spec import EXTRA_PARAMS, Feature, import_estimator

NATIVE_CLASSES = {
    "xgboost-json": "xgboost.XGBClassifier",
    "xgboost-ubj": "xgboost.XGBClassifier",
    "lightgbm-text": "lightgbm.LGBMClassifier",
}


class NotRebuildable(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _target(frame: pd.DataFrame, schema: InputSchema) -> np.ndarray[Any, Any]:
    column = frame[schema.target].to_numpy()
    return np.asarray([same_class(v, schema.positive_class) for v in column], dtype=int)


def _named(original: Any) -> bool:
    """Whether the imported model was fitted on named columns (a DataFrame), not an array."""
    estimator = estimator_of(original)
    if hasattr(estimator, "get_booster"):
        names = estimator.get_booster().feature_names
    else:
        names = estimator.booster_.feature_name()
    return not generic_names(list(names) if names is not None else None)


def _native_recipe(
    fmt: str,
    params: dict[str, str],
    frame: pd.DataFrame,
    features: list[str],
    y: Any,
    named: bool,
) -> tuple[bytes, dict[str, Any]]:
    path = NATIVE_CLASSES[fmt]
    estimator_class = import_estimator(path)
    # LightGBM takes its booster's parameters as keyword arguments: those a spec may set too.
    known = set(estimator_class().get_params()) | EXTRA_PARAMS.get(path, set())
    known -= {"callbacks"}
    used = {k: parse_param(v) for k, v in params.items() if k in known}
    x = frame[features] if named else frame[features].to_numpy()
    model = estimator_class(**used).fit(x, y)
    if fmt.startswith("xgboost"):
        content = bytes(model.get_booster().save_raw("json" if fmt == "xgboost-json" else "ubj"))
    else:
        content = model.booster_.model_to_string().encode("utf-8")
    recipe = {
        "estimator": NATIVE_CLASSES[fmt],
        "input": "the data version's columns, as pandas reads the file"
        + ("" if named else ", as an array (the model was fitted on one)"),
        "params": {k: params[k] for k in sorted(used)},
        "params_not_taken": sorted(set(params) - known),
    }
    return content, recipe


def rebuild_imported(
    version_lineage: dict[str, Any],
    schema: InputSchema,
    frame: pd.DataFrame,
    store: ArtifactStore,
    recorded_fingerprint: str,
    recorded_sha256: str,
) -> tuple[dict[str, Any], Any]:
    """The facts of re-running the recorded training, and the rebuilt model (as govern serves
    it, for scoring rows and decisions again)."""
    record = version_lineage["mlflow"]
    check = record["data_verification"]
    if check["status"] != "verified":
        raise NotRebuildable(
            "the data this MLflow model was trained on is unverified, so govern cannot re-run "
            f"its training: {check['reason']}"
        )
    digest = mlflow_digest(frame)
    if digest != check.get("govern_digest"):
        raise NotRebuildable(
            f"the data version's rows now have the MLflow digest {digest}, not the "
            f"{check.get('govern_digest')} verified at import"
        )
    features = [f.name for f in schema.features]
    y = _target(frame, schema)
    fmt = record["artifact_format"]
    facts: dict[str, Any] = {"mlflow": {"run_id": record["run_id"], "digest": digest}}
    original = store.load_model(recorded_sha256)
    if fmt in FORMATS:
        uploaded = version_lineage["artifact"]["uploaded"]
        content, recipe = _native_recipe(
            fmt, record["params"], frame, features, y, _named(original)
        )
        declared = [Feature(name=f.name, type=f.type) for f in schema.features]
        rebuilt = load_native(fmt, content, declared)
        rebuilt_sha = hashlib.sha256(content).hexdigest()
        facts["recipe"] = {**recipe, "rows": len(frame), "features": features}
        mine = fingerprint(rebuilt)
        facts["artifact"] = {
            "recorded": {
                "sha256": uploaded["sha256"],
                "fingerprint": recorded_fingerprint,
                "format": fmt,
            },
            "rebuilt": {"sha256": rebuilt_sha, "fingerprint": mine, "format": fmt},
            "bytes_identical": rebuilt_sha == uploaded["sha256"],
            "fingerprint_identical": mine == recorded_fingerprint,
        }
        return facts, rebuilt
    from sklearn.base import clone

    rebuilt = clone(original)
    # As its trainer fitted it: the columns as pandas reads the file, and the target's own
    # values when those are the classes the model learned (else 1 for the positive class).
    raw = frame[schema.target].to_numpy()
    learned = {str(c) for c in getattr(original, "classes_", [])}
    rebuilt.fit(frame[features], raw if learned == {str(v) for v in set(raw)} else y)
    facts["recipe"] = {
        "estimator": "a clone of the imported Pipeline, with all its hyperparameters",
        "rows": len(frame),
        "features": features,
    }
    mine = fingerprint(rebuilt)
    facts["artifact"] = {
        "recorded": {"fingerprint": recorded_fingerprint},
        "rebuilt": {"fingerprint": mine},
        "bytes_identical": None,  # skops files are not byte-stable: the fingerprint decides
        "fingerprint_identical": mine == recorded_fingerprint,
    }
    return facts, rebuilt


def compare_all_rows(
    frame: pd.DataFrame, schema: InputSchema, original: Any, rebuilt: Any
) -> dict[str, Any]:
    """Every row of the data version scored by both models."""
    x = frame_from_table(schema, frame[[f.name for f in schema.features]])
    before = positive_proba(original, x, schema)
    after = positive_proba(rebuilt, x, schema)
    old = [str(schema.label_for(s)) for s in before]
    new = [str(schema.label_for(s)) for s in after]
    changed = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
    return {
        "rows": len(x),
        "scope": "every row of the data version (an imported model has no validation split)",
        "changed": len(changed),
        "max_score_difference": float(np.max(np.abs(after - before))) if len(x) else 0.0,
        "examples": [
            {
                "row": i,
                "recorded": {"label": old[i], "score": float(before[i])},
                "rebuilt": {"label": new[i], "score": float(after[i])},
            }
            for i in changed[:10]
        ],
    }
