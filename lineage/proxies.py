"""Proxy report: how well each feature, and the model score, predicts each protected attribute. Pure.

For every (protected attribute, feature) pair a classifier that sees that one feature alone is
fitted and scored out of sample, by stratified k-fold cross-validation with a recorded seed:

* a categorical feature keeps each value as its own level (a missing value is a level of its
  own; an integer code and the float equal to it are one level) and predicts the Laplace-smoothed
  group frequencies of the level (scikit-learn ``CategoricalNB`` with ``alpha=1``: the saturated
  model of the feature's one-hot encoding, so every level gets its own rate and nothing is
  assumed about their order);
* a numeric feature, and the model score, use a decision tree of depth at most 4 (at most 16
  intervals of the value), so a non-monotone relation such as an age band in the middle of the
  range is caught where a logistic regression would see a flat line; missing values are routed
  by the tree like any other value. The values are first put in at most 255 ordered bins (the
  distinct values themselves when there are fewer, else quantile bins, as gradient boosting
  does), and each fold's classifier is fitted on the table of (bin, group) counts as sample
  weights: the same fit as on the rows, at a fraction of the cost, where gradient boosting with
  several groups would cost one tree per group per iteration.

The figure is the AUC of the out-of-fold probabilities: 0.5 means the feature tells nothing
about the attribute, 1.0 that it identifies the group exactly. With more than two groups it is
the unweighted (macro) mean of the one-vs-rest AUCs, so a small group counts as much as a large
one; each group's own AUC is reported beside it. The second figure is the normalised mutual
information (arithmetic mean of the two entropies, 0 to 1) on the same rows, in sample, with
numeric values in quantile bins and missing values as a bin of their own.

Small data is said, not hidden: rows whose attribute is unknown (``missing``, ``unbinned``) and
groups with fewer than ``min_group_rows`` rows are left out with a note, and an attribute with
fewer than two usable groups is ``not_assessable`` with the reason. Larger inputs are subsampled
(seeded) to ``max_rows``. The same inputs and seed give the same report.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import rankdata
from sklearn.metrics import normalized_mutual_info_score
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import CategoricalNB
from sklearn.tree import DecisionTreeClassifier

PROXY_AUC_THRESHOLD = 0.7
MIN_GROUP_ROWS = 10
MAX_ROWS = 20000
FOLDS = 5
TREE_DEPTH = 4
TREE_BINS = 255
MI_BINS = 10
UNKNOWN_GROUPS = ("missing", "unbinned")
SCORE = "model score"
_DIGITS = 4
_FLOAT64_MAX = 1.0e300

Folds = list[tuple[NDArray[np.intp], NDArray[np.intp]]]


def method_text(
    *, threshold: float, min_group_rows: int, max_rows: int, unknown: Collection[str]
) -> str:
    unknown_text = ", ".join(repr(u) for u in unknown) or "none"
    return (
        "For each protected attribute and each feature (and the model score), a classifier that "
        "sees that one feature alone is scored out of sample by "
        f"{FOLDS}-fold stratified cross-validation (seeded). Categorical features: each value, "
        "a missing value included, is its own level, with Laplace-smoothed group frequencies "
        "per level (CategoricalNB, alpha=1). Numeric features and the score: a decision tree of "
        f"depth at most {TREE_DEPTH} on at most {TREE_BINS} ordered bins of the value, so "
        "non-monotone relations are caught; missing values are routed by the tree. AUC is the area under the ROC curve of the out-of-fold "
        "probabilities (0.5: no information, 1.0: the group is identified exactly); with more "
        "than two groups it is the unweighted (macro) mean of the one-vs-rest AUCs, and each "
        "group's own AUC is given. mutual_information is the normalised mutual information "
        f"(arithmetic mean of entropies, 0 to 1) on the same rows, in sample, numeric values in "
        f"{MI_BINS} quantile bins. Left out: rows whose attribute is unknown ({unknown_text}) "
        f"and groups with fewer than {min_group_rows} rows; an attribute with fewer than two "
        f"usable groups is not assessable. Inputs above {max_rows} rows are subsampled "
        f"(seeded). A top proxy is a feature with AUC >= {threshold:g}."
    )


def _category_text(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    return str(value)


class _Encoded(NamedTuple):
    """A feature as level codes 0..levels-1 per row (missing is a level of its own)."""

    kind: str
    codes: NDArray[np.intp]
    levels: int
    level_x: NDArray[np.float64] | None  # numeric: the tree's input value of each level
    mi_codes: NDArray[np.intp]  # numeric: coarse quantile bins for the mutual information


def _categorical(values: pd.Series) -> _Encoded:
    raw_codes, uniques = pd.factorize(pd.Series(np.asarray(values, dtype=object)))
    texts = [_category_text(u) for u in uniques]
    keys = sorted({t for t in texts if t is not None})
    index = {t: i for i, t in enumerate(keys)}
    missing = len(keys)
    remap = np.array([missing if t is None else index[t] for t in texts] + [missing], dtype=np.intp)
    # pd.factorize gives -1 to a missing value, which indexes the trailing ``missing`` entry
    codes = remap[np.asarray(raw_codes, dtype=np.intp)]
    return _Encoded("categorical", codes, missing + 1, None, codes)


def _numeric_values(values: pd.Series | NDArray[Any]) -> NDArray[np.float64]:
    x = pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce")
    array = x.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(np.clip(array, -_FLOAT64_MAX, _FLOAT64_MAX), dtype=np.float64)


def _quantile_codes(x: NDArray[np.float64], bins: int) -> NDArray[np.intp]:
    """Present values -> ordered bin codes: the distinct values themselves when there are at
    most ``bins`` of them, else quantile bins."""
    distinct = np.unique(x)
    if len(distinct) <= bins:
        return np.searchsorted(distinct, x).astype(np.intp)
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(edges, x, side="right").astype(np.intp)


def _numeric(values: pd.Series | NDArray[Any]) -> _Encoded:
    x = _numeric_values(values)
    present = ~np.isnan(x)
    codes = np.zeros(len(x), dtype=np.intp)
    mi_codes = np.zeros(len(x), dtype=np.intp)
    if not present.any():  # no value at all: one level, which tells nothing
        return _Encoded("numeric", codes, 1, np.zeros(1), mi_codes)
    codes[present] = _quantile_codes(x[present], TREE_BINS)
    mi_codes[present] = _quantile_codes(x[present], MI_BINS) + 1
    bins = int(codes[present].max()) + 1
    level_x = np.arange(bins, dtype=np.float64)
    if not present.all():  # missing: a level of its own, which the tree routes where it fits
        codes[~present] = bins
        level_x = np.append(level_x, np.nan)
    return _Encoded("numeric", codes, len(level_x), level_x, mi_codes)


def _auc(scores: NDArray[np.float64], positive: NDArray[np.bool_]) -> float:
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _oof_proba(
    feature: _Encoded, y: NDArray[np.intp], k: int, folds: Folds, seed: int
) -> NDArray[np.float64]:
    """Out-of-fold group probabilities. Each fold's classifier is fitted on the fold's table of
    (level, group) counts, given as sample weights: the same fit as on the rows themselves, at
    the cost of the table."""
    proba = np.zeros((len(y), k), dtype=np.float64)
    levels = feature.levels
    for train, test in folds:
        counts = np.bincount(feature.codes[train] * k + y[train], minlength=levels * k)
        level, group = np.nonzero(counts.reshape(levels, k))
        weight = counts.reshape(levels, k)[level, group].astype(np.float64)
        if feature.level_x is None:
            model: Any = CategoricalNB(alpha=1.0, min_categories=levels)
            model.fit(level.reshape(-1, 1), group, sample_weight=weight)
            table = model.predict_proba(np.arange(levels).reshape(-1, 1))
        else:
            model = DecisionTreeClassifier(
                max_depth=TREE_DEPTH,
                min_weight_fraction_leaf=max(MIN_GROUP_ROWS, len(train) // 200) / len(train),
                random_state=seed,
            )
            model.fit(feature.level_x[level].reshape(-1, 1), group, sample_weight=weight)
            table = model.predict_proba(feature.level_x.reshape(-1, 1))
        full = np.zeros((levels, k), dtype=np.float64)
        full[:, model.classes_] = table
        proba[test] = full[feature.codes[test]]
    return proba


def _measure(
    feature: _Encoded,
    y: NDArray[np.intp],
    groups: list[str],
    folds: Folds,
    seed: int,
) -> dict[str, Any]:
    k = len(groups)
    proba = _oof_proba(feature, y, k, folds, seed)
    if k == 2:
        auc = _auc(proba[:, 1], y == 1)
        group_auc = dict.fromkeys(groups, round(auc, _DIGITS))
    else:
        per_group = [_auc(proba[:, c], y == c) for c in range(k)]
        auc = float(np.mean(per_group))
        group_auc = {g: round(a, _DIGITS) for g, a in zip(groups, per_group, strict=True)}
    nmi = float(normalized_mutual_info_score(y, feature.mi_codes))
    return {
        "auc": round(auc, _DIGITS),
        "group_auc": group_auc,
        "mutual_information": round(max(nmi, 0.0), _DIGITS),
    }


def _rows(feature: _Encoded, mask: NDArray[np.bool_]) -> _Encoded:
    return feature._replace(codes=feature.codes[mask], mi_codes=feature.mi_codes[mask])


def _group_text(groups: Mapping[str, int]) -> str:
    return ", ".join(f"{g!r} ({n} rows)" for g, n in groups.items())


def _assess_attribute(
    name: str,
    labels: NDArray[Any],
    encoded: Mapping[str, _Encoded],
    score: _Encoded | None,
    *,
    seed: int,
    threshold: float,
    min_group_rows: int,
    unknown: Collection[str],
) -> dict[str, Any]:
    values, counts = np.unique(labels, return_counts=True)
    all_groups = {str(v): int(c) for v, c in zip(values, counts, strict=True)}
    unknown_groups = {g: n for g, n in all_groups.items() if g in unknown}
    small = {g: n for g, n in all_groups.items() if g not in unknown and n < min_group_rows}
    usable = [g for g, n in all_groups.items() if g not in unknown and n >= min_group_rows]
    notes: list[str] = []
    if unknown_groups:
        notes.append(f"rows whose {name} is unknown are left out: {_group_text(unknown_groups)}")
    if small:
        notes.append(
            f"groups with fewer than {min_group_rows} rows are left out of the AUC: "
            f"{_group_text(small)}"
        )
    if name in encoded:
        notes.append(f"the feature {name!r} is the attribute itself and is not scored against it")
    mask = np.isin(labels, usable)
    n = int(mask.sum())
    result: dict[str, Any] = {
        "n": n,
        "groups": all_groups,
        "groups_assessed": usable,
        "groups_left_out": {**unknown_groups, **small},
        "status": "assessed",
        "reason": None,
        "notes": notes,
        "features": [],
        "score": None,
        "top_proxies": [],
    }
    if len(usable) < 2:
        result["status"] = "not_assessable"
        having = (
            f"only {_group_text({g: all_groups[g] for g in usable})} has"
            if usable
            else "no group has"
        )
        result["reason"] = (
            f"{having} at least {min_group_rows} rows with a known {name}; "
            "at least two such groups are needed"
        )
        return result
    index = {g: i for i, g in enumerate(usable)}
    y = np.array([index[g] for g in labels[mask]], dtype=np.intp)
    splitter = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    folds: Folds = list(splitter.split(np.zeros(n), y))
    features = []
    for feature, encoding in encoded.items():
        if feature == name:
            continue
        figures = _measure(_rows(encoding, mask), y, usable, folds, seed)
        features.append({"feature": feature, "type": encoding.kind, **figures})
    features.sort(key=lambda f: (-f["auc"], f["feature"]))
    result["features"] = features
    result["top_proxies"] = [f["feature"] for f in features if f["auc"] >= threshold]
    if score is not None:
        result["score"] = _measure(_rows(score, mask), y, usable, folds, seed)
    return result


def _summary(attributes: Mapping[str, Mapping[str, Any]], threshold: float) -> list[str]:
    lines: list[str] = []
    for name, report in attributes.items():
        if report["status"] != "assessed":
            lines.append(f"{name}: proxies not assessable ({report['reason']})")
            continue
        k = len(report["groups_assessed"])
        over = f" (macro over {k} groups)" if k > 2 else ""
        by_name = {f["feature"]: f for f in report["features"]}
        for feature in report["top_proxies"]:
            lines.append(f"{feature} predicts {name} with AUC {by_name[feature]['auc']:.2f}{over}")
        if not report["top_proxies"]:
            best = report["features"][0] if report["features"] else None
            highest = f" (highest: {best['feature']}, {best['auc']:.2f})" if best else ""
            lines.append(f"no feature predicts {name} with AUC >= {threshold:g}{highest}")
        if report["score"] is not None:
            lines.append(
                f"the model score predicts {name} with AUC {report['score']['auc']:.2f}{over}"
            )
    return lines


def proxy_report(
    features: pd.DataFrame,
    feature_types: Mapping[str, str],
    protected: Mapping[str, pd.Series],
    score: NDArray[Any] | None,
    *,
    seed: int,
    max_rows: int = MAX_ROWS,
    min_group_rows: int = MIN_GROUP_ROWS,
    threshold: float = PROXY_AUC_THRESHOLD,
    unknown_groups: Collection[str] = UNKNOWN_GROUPS,
) -> dict[str, Any]:
    """How well each feature in ``feature_types`` (and ``score``) predicts each protected attribute.

    ``features`` holds the training rows' model inputs; ``feature_types`` maps each feature to
    ``"numeric"`` or ``"categorical"`` (other columns of ``features`` are ignored).
    ``protected`` maps each attribute to its group label per row, and ``score`` is the model's
    score per row; both are aligned with ``features`` by position. Raises ``ValueError``
    naming the argument when the inputs do not fit together.
    """
    rows = len(features)
    for feature, kind in feature_types.items():
        if kind not in ("numeric", "categorical"):
            raise ValueError(
                f"feature_types[{feature!r}] must be 'numeric' or 'categorical', got {kind!r}"
            )
        if feature not in features.columns:
            raise ValueError(f"feature_types names {feature!r}, which is not a column of features")
    for attribute, labels in protected.items():
        if len(labels) != rows:
            raise ValueError(
                f"protected[{attribute!r}] has {len(labels)} rows; features has {rows}"
            )
    if score is not None and len(score) != rows:
        raise ValueError(f"score has {len(score)} rows; features has {rows}")
    if max_rows < 2 * FOLDS:
        raise ValueError(f"max_rows must be at least {2 * FOLDS}, got {max_rows}")

    if rows > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))
    else:
        keep = np.arange(rows)
    frame = features.iloc[keep]
    encoded = {
        feature: _categorical(frame[feature]) if kind == "categorical" else _numeric(frame[feature])
        for feature, kind in feature_types.items()
    }
    score_values = None if score is None else _numeric(np.asarray(score)[keep])
    attributes: dict[str, Any] = {}
    for attribute, labels in protected.items():
        label_values = pd.Series(np.asarray(labels, dtype=object)[keep], dtype=object)
        texts = label_values.where(label_values.notna(), "missing").astype(str).to_numpy()
        attributes[attribute] = _assess_attribute(
            attribute,
            texts,
            encoded,
            score_values,
            seed=seed,
            threshold=threshold,
            min_group_rows=min_group_rows,
            unknown=unknown_groups,
        )
    return {
        "method": method_text(
            threshold=threshold,
            min_group_rows=min_group_rows,
            max_rows=max_rows,
            unknown=unknown_groups,
        ),
        "seed": seed,
        "rows": rows,
        "rows_used": len(keep),
        "max_rows": max_rows,
        "subsampled": rows > max_rows,
        "threshold": threshold,
        "min_group_rows": min_group_rows,
        "attributes": attributes,
        "summary": _summary(attributes, threshold),
    }
