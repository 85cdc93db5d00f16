"""Anchor rules with alibi 0.9.4 ``AnchorTabular``: "while these conditions hold, the model
decides the same way, with this precision". Pure computation, seeded.

The explainer works on the original features in their own units: numbers as they were sent,
categories by name, so the rule reads as a person would write it ("income <= 41000.00 AND
purpose = car"). It is fitted on the model version's training rows (quartile bins). alibi
samples with NumPy's global generator, so each explanation seeds it with the recorded seed
under a process-wide lock: the same decision always gives the same rule.

Besides alibi's own estimates, the result carries the rule's precision and coverage measured
exactly on the training rows, from structured conditions whose bounds are the discretizer's
exact bin edges.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from explain.attributions import library_versions
from explain.context import GLOBAL_RNG, ModelContext

if TYPE_CHECKING:
    from alibi.explainers import AnchorTabular

DISC_PERCENTILES = (25, 50, 75)
# alibi warns through logging when no anchor reaches the threshold; the result says so instead.
logging.getLogger("alibi.explainers.anchors").setLevel(logging.ERROR)

_BETWEEN = re.compile(r"^(?P<lo>\S+) < (?P<name>.+) <= (?P<hi>\S+)$")
_AT_MOST = re.compile(r"^(?P<name>.+) <= (?P<hi>\S+)$")
_ABOVE = re.compile(r"^(?P<name>.+) > (?P<lo>\S+)$")
_EQUALS = re.compile(r"^(?P<name>.+?) = (?P<value>.+)$")


class _Encoding:
    """Features as alibi wants them: numbers as floats, categories as integer codes."""

    def __init__(self, context: ModelContext) -> None:
        self.context = context
        self.features = context.schema["features"]
        self.names = [f["name"] for f in self.features]
        self.categories = {
            i: list(f.get("categories") or [])
            for i, f in enumerate(self.features)
            if f["type"] == "categorical"
        }
        train = context.train
        columns = []
        for i, name in enumerate(self.names):
            if i in self.categories:
                lookup = {c: k for k, c in enumerate(self.categories[i])}
                codes = train[name].map(lambda v, lk=lookup: lk.get(str(v), -1)).to_numpy(float)
                columns.append(codes)
            else:
                values = train[name].to_numpy(dtype=float)
                columns.append(np.where(np.isnan(values), np.nanmedian(values), values))
        self.train = np.column_stack(columns)

    def encode(self, features: dict[str, Any]) -> NDArray[np.float64]:
        row = []
        for i, name in enumerate(self.names):
            value = features.get(name)
            row.append(self.categories[i].index(str(value)) if i in self.categories else value)
        return np.asarray(row, dtype=float)

    def decode(self, x: NDArray[Any]) -> list[dict[str, Any]]:
        columns: list[list[Any]] = []
        for i in range(len(self.names)):
            if i in self.categories:
                cats = self.categories[i]
                columns.append([cats[int(v)] for v in x[:, i]])
            else:
                columns.append([float(v) for v in x[:, i]])
        return [dict(zip(self.names, row, strict=True)) for row in zip(*columns, strict=True)]


def _explainer(context: ModelContext, seed: int) -> tuple[AnchorTabular, _Encoding]:
    def build() -> tuple[AnchorTabular, _Encoding]:
        # Imported on first use: alibi takes seconds to import (it loads all its explainers).
        from alibi.explainers import AnchorTabular

        encoding = _Encoding(context)
        positive = str(context.schema["classes"][1])

        def predictor(x: NDArray[Any]) -> NDArray[np.int64]:
            scores = context.model.scores(encoding.decode(np.atleast_2d(x)))
            labels = context.labels(np.asarray(scores))
            return np.asarray([1 if str(label) == positive else 0 for label in labels])

        explainer = AnchorTabular(
            predictor,
            feature_names=encoding.names,
            categorical_names=encoding.categories,
            seed=seed,
        )
        with GLOBAL_RNG:
            explainer.fit(encoding.train, disc_perc=DISC_PERCENTILES)
        return explainer, encoding

    result: tuple[AnchorTabular, _Encoding] = context.cached(("anchor", seed), build)
    return result


def _edges(explainer: AnchorTabular, index: int) -> NDArray[np.float64]:
    disc = explainer.samplers[0].disc
    return np.asarray(disc.lambdas[index].keywords["qts"], dtype=float)


def _snap(edges: NDArray[np.float64], printed: str) -> float:
    """alibi prints edges with two decimals; the condition uses the exact edge."""
    return float(edges[int(np.argmin(np.abs(edges - float(printed))))])


def parse_condition(text: str, explainer: AnchorTabular, names: list[str]) -> dict[str, Any]:
    for pattern in (_BETWEEN, _AT_MOST, _ABOVE):
        match = pattern.match(text)
        if match and match["name"] in names:
            index = names.index(match["name"])
            edges = _edges(explainer, index)
            groups = match.groupdict()
            return {
                "feature": match["name"],
                "above": _snap(edges, groups["lo"]) if groups.get("lo") else None,
                "at_most": _snap(edges, groups["hi"]) if groups.get("hi") else None,
            }
    match = _EQUALS.match(text)
    if match and match["name"] in names:
        return {"feature": match["name"], "equals": match["value"]}
    raise ValueError(f"cannot read anchor condition {text!r}")


def holds(conditions: list[dict[str, Any]], frame: pd.DataFrame) -> NDArray[np.bool_]:
    """Which rows of a feature frame satisfy every condition."""
    mask = np.ones(len(frame), dtype=bool)
    for condition in conditions:
        column = frame[condition["feature"]]
        if "equals" in condition:
            mask &= column.astype(str).to_numpy() == condition["equals"]
            continue
        values = column.to_numpy(dtype=float)
        if condition.get("above") is not None:
            mask &= values > condition["above"]
        if condition.get("at_most") is not None:
            mask &= values <= condition["at_most"]
    return mask


def training_labels(context: ModelContext) -> list[str]:
    result: list[str] = context.cached(
        "train-labels",
        lambda: [str(label) for label in context.labels(context.scores(context.train))],
    )
    return result


def _text(condition: dict[str, Any]) -> str:
    name = condition["feature"]
    if "equals" in condition:
        return f"{name} = {condition['equals']}"
    above, at_most = condition.get("above"), condition.get("at_most")
    if above is not None and at_most is not None:
        return f"{above:.2f} < {name} <= {at_most:.2f}"
    if at_most is not None:
        return f"{name} <= {at_most:.2f}"
    return f"{name} > {above:.2f}"


def _own_bin(
    explainer: AnchorTabular, encoding: _Encoding, features: dict[str, Any], index: int
) -> dict[str, Any]:
    """The condition 'in the same quartile bin (or category) as this applicant'."""
    name = encoding.names[index]
    if index in encoding.categories:
        return {"feature": name, "equals": str(features[name])}
    edges = _edges(explainer, index)
    value = float(features[name])
    position = int(np.searchsorted(edges, value, side="left"))
    return {
        "feature": name,
        "above": float(edges[position - 1]) if position > 0 else None,
        "at_most": float(edges[position]) if position < len(edges) else None,
    }


def _measure(
    conditions: list[dict[str, Any]], train: pd.DataFrame, labels: NDArray[Any], label: Any
) -> tuple[float | None, int]:
    mask = holds(conditions, train)
    covered = int(mask.sum())
    if not covered:
        return None, 0
    return float((labels[mask] == str(label)).sum() / covered), covered


def _refine(
    conditions: list[dict[str, Any]],
    threshold: float,
    measure: Any,
    candidates: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[str]]:
    """Add the applicant's own bins, most precise first, until the rule holds on the training
    rows at the threshold (alibi's precision is a sampled estimate; this one is exact)."""
    added: list[str] = []
    precision, _ = measure(conditions)
    while (precision is None or precision < threshold) and candidates:
        scored = []
        for candidate in candidates:
            p, covered = measure([*conditions, candidate])
            if p is not None:
                scored.append((p, covered, candidate["feature"], candidate))
        if not scored:
            break
        best = max(scored, key=lambda item: (item[0], item[1], item[2]))
        if precision is not None and best[0] <= precision:
            break
        conditions = [*conditions, best[3]]
        candidates = [c for c in candidates if c["feature"] != best[2]]
        added.append(_text(best[3]))
        precision = best[0]
    return conditions, added


def explain_anchor(
    context: ModelContext, features: dict[str, Any], label: Any, threshold: float, seed: int
) -> dict[str, Any]:
    explainer, encoding = _explainer(context, seed)
    x = encoding.encode(features)
    lock = context.cached("anchor-lock", threading.Lock)
    with lock, GLOBAL_RNG:
        np.random.seed(seed)
        explanation = explainer.explain(x, threshold=threshold, batch_size=200)
    rule = list(explanation.anchor)
    conditions = [parse_condition(text, explainer, encoding.names) for text in rule]
    labels = np.asarray(training_labels(context), dtype=object)

    def measure(conds: list[dict[str, Any]]) -> tuple[float | None, int]:
        return _measure(conds, context.train, labels, label)

    used = {c["feature"] for c in conditions}
    candidates = [
        _own_bin(explainer, encoding, features, i)
        for i, name in enumerate(encoding.names)
        if name not in used
    ]
    conditions, added = _refine(conditions, threshold, measure, candidates)
    precision, covered = measure(conditions)
    total = len(context.train)
    meets = precision is not None and precision >= threshold
    texts = [*rule, *added]
    if meets:
        message = None
    elif added:
        message = "no rule built from the applicant's quartile bins reaches the threshold on the training rows; this is the most precise one"
    else:
        message = "the rule's precision on the training rows is below the threshold"
    return {
        "rule": " AND ".join(texts)
        if texts
        else "(empty anchor: the model decides this way for almost everyone)",
        "conditions": conditions,
        "label": label,
        "precision": precision,
        "coverage": covered / total if total else None,
        "threshold": threshold,
        "meets_threshold": meets,
        "training_rows": {"matching": covered, "total": total},
        "alibi_estimate": {
            "rule": " AND ".join(rule),
            "precision": float(explanation.precision),
            "coverage": float(explanation.coverage),
        },
        "refined": added,
        "message": message,
        "seed": seed,
        "method": f"alibi {library_versions()['alibi']} AnchorTabular (quartile bins of the "
        "training rows); precision and coverage measured exactly on the training rows, with "
        "the applicant's own bins added when alibi's sampled estimate overstated it",
        "background": {"source": context.rows_source},
    }
