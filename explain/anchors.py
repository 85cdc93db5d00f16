"""Anchor rules with alibi 0.9.4 ``AnchorTabular``: "while these conditions hold, the model
decides the same way, with this precision". Pure computation, seeded.

The explainer works on the original features in their own units: numbers as they were sent,
categories by their code (with the spec's label beside it when there is one), so the rule reads
as a person would write it ("income <= 41000.00 AND purpose = car"). It is fitted on the model
version's training rows (quartile bins). alibi samples with NumPy's global generator, so each
explanation seeds it with the recorded seed under a process-wide lock: the same decision always
gives the same rule.

Besides alibi's own estimates (sampled, and counting the applicant's own row when it was in the
training split), the result is measured exactly on the training rows, from structured conditions
whose bounds are the discretizer's exact bin edges:

* the explained row is left out: training rows whose features equal the applicant's (after the
  same frame conversion the model uses) count neither in the coverage nor in the precision, and
  ``explained_row_in_training`` says whether there were any;
* ``coverage_rows`` is the number of other training rows the rule covers, and ``precision`` the
  share of them the model decides the same way (null when it covers none);
* ``precision_lower_bound`` is the one-sided 95% Clopper-Pearson (exact binomial) lower bound on
  that precision at those rows;
* a rule meets the threshold only if it covers at least ``MIN_SUPPORT`` rows and its lower bound
  clears the threshold (``meets_threshold``, and ``reliable``, say the same).

alibi's rule is only the starting point: its precision is a sampled estimate and it often rests
on a handful of rows. The rules compared are alibi's and every rule a beam search (``BEAM`` rules
wide, one condition a step, each step raising the lower bound) grows from it and from the empty
rule, with conditions that hold for the applicant: alibi's own, the applicant's quartile bin of
each feature (or its category), and each one-sided condition at a bin edge ("income > 37097.72").
Of the rules that meet the threshold the widest wins (then the shorter); if none does, the answer
says "no reliable rule" (``reliable: false``) and shows the one with the highest lower bound, with
the numbers that say why. The bound treats the covered rows as a sample of applicants like them;
it is computed for the rule chosen after a search over many, so it leans optimistic, and it is
never a guarantee about applicants not yet seen.

A missing value is its own condition ("employment_years is missing"): the training rows with
that feature missing, whatever alibi made of it.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import betaincinv

from explain.attributions import library_versions
from explain.context import GLOBAL_RNG, ModelContext
from lineage.input_schema import FeatureEntry, to_frame
from lineage.spec import category_text

if TYPE_CHECKING:
    from alibi.explainers import AnchorTabular

DISC_PERCENTILES = (25, 50, 75)
# Fewer rows than this make an anecdote, not a rule: with 20 rows one row moves the precision by
# 5 points, and a rule on fewer rows than that says little about the next applicant. The lower
# bound already demands many rows at a high threshold (an all-agreeing rule needs 59 rows for its
# one-sided 95% bound to reach 0.95); the minimum holds for low thresholds too (at 0.7, 9 rows
# that all agree would clear the bound).
MIN_SUPPORT = 20
CONFIDENCE = 0.95
BOUND = {
    "method": "Clopper-Pearson (exact binomial)",
    "confidence": CONFIDENCE,
    "sided": "one-sided lower bound",
}
MISSING = "(missing)"
# Rules extended at each step of the search over the applicant's conditions.
BEAM = 8
# alibi warns through logging when no anchor reaches the threshold; the result says so instead.
logging.getLogger("alibi.explainers.anchors").setLevel(logging.ERROR)

_BETWEEN = re.compile(r"^(?P<lo>\S+) < (?P<name>.+) <= (?P<hi>\S+)$")
_AT_MOST = re.compile(r"^(?P<name>.+) <= (?P<hi>\S+)$")
_ABOVE = re.compile(r"^(?P<name>.+) > (?P<lo>\S+)$")
_EQUALS = re.compile(r"^(?P<name>.+?) = (?P<value>.+)$")


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


class _Encoding:
    """Features as alibi wants them: numbers as floats (a missing one as the training median),
    categories as integer codes over the declared categories, any other value seen in training,
    and ``(missing)``."""

    def __init__(self, context: ModelContext) -> None:
        self.context = context
        self.features = context.input_schema.features
        self.names = [f.name for f in self.features]
        self.categories: dict[int, list[str]] = {}
        self.values: dict[int, list[Any]] = {}
        self.medians: dict[int, float] = {}
        train = context.train
        columns = []
        for i, feature in enumerate(self.features):
            name = feature.name
            if not feature.numeric:
                declared: list[Any] = list(feature.categories or [])
                codes = [category_text(c) for c in declared]
                present = train[name].dropna().astype(str).to_numpy(dtype=object)
                others = sorted(set(present) - set(codes))
                self.categories[i] = [*codes, *others, MISSING]
                self.values[i] = [*declared, *others, None]
                columns.append(self._codes(i, train[name]))
            else:
                values = train[name].to_numpy(dtype=float)
                known = values[~np.isnan(values)]
                self.medians[i] = float(np.median(known)) if known.size else 0.0
                columns.append(np.where(np.isnan(values), self.medians[i], values))
        self.train = np.column_stack(columns)

    def _codes(self, index: int, column: pd.Series) -> NDArray[np.float64]:
        lookup = {c: k for k, c in enumerate(self.categories[index][:-1])}
        missing = len(self.categories[index]) - 1
        return np.array(
            [missing if _is_missing(v) else lookup.get(str(v), missing) for v in column],
            dtype=float,
        )

    def encode(self, row: pd.DataFrame) -> NDArray[np.float64]:
        """One row of the model's frame (``to_frame``) as alibi's vector."""
        values = []
        for i, name in enumerate(self.names):
            if i in self.categories:
                values.append(float(self._codes(i, row[name])[0]))
            else:
                value = float(row[name].iloc[0])
                values.append(self.medians[i] if math.isnan(value) else value)
        return np.asarray(values, dtype=float)

    def decode(self, x: NDArray[Any]) -> list[dict[str, Any]]:
        columns: list[list[Any]] = []
        for i in range(len(self.names)):
            if i in self.categories:
                values = self.values[i]
                columns.append([values[int(v)] for v in x[:, i]])
            else:
                columns.append([float(v) for v in x[:, i]])
        return [dict(zip(self.names, row, strict=True)) for row in zip(*columns, strict=True)]


def _explainer(context: ModelContext, seed: int) -> tuple[AnchorTabular, _Encoding]:
    def build() -> tuple[AnchorTabular, _Encoding]:
        # Imported on first use: alibi takes seconds to import (it loads all its explainers).
        from alibi.explainers import AnchorTabular

        encoding = _Encoding(context)
        positive = str(context.input_schema.classes[1])

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
        if match["value"] == MISSING:
            return {"feature": match["name"], "missing": True}
        return {"feature": match["name"], "equals": match["value"]}
    raise ValueError(f"cannot read anchor condition {text!r}")


def holds(conditions: list[dict[str, Any]], frame: pd.DataFrame) -> NDArray[np.bool_]:
    """Which rows of a feature frame satisfy every condition."""
    mask = np.ones(len(frame), dtype=bool)
    for condition in conditions:
        column = frame[condition["feature"]]
        if condition.get("missing"):
            mask &= column.isna().to_numpy()
            continue
        if "equals" in condition:
            present = column.notna().to_numpy()
            mask &= present & (column.astype(str).to_numpy() == condition["equals"])
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


def explained_rows(context: ModelContext, row: pd.DataFrame) -> NDArray[np.bool_]:
    """The training rows equal to the explained input, feature by feature, in the model's frame
    (numbers as floats, categories as text, missing equal to missing)."""
    train = context.train
    mask = np.ones(len(train), dtype=bool)
    for feature in context.input_schema.features:
        name = feature.name
        column = train[name]
        value = row[name].iloc[0]
        missing = column.isna().to_numpy()
        if _is_missing(value):
            mask &= missing
        elif feature.numeric:
            mask &= ~missing & (column.to_numpy(dtype=float) == float(value))
        else:
            mask &= ~missing & (column.astype(str).to_numpy() == str(value))
    return mask


@functools.lru_cache(maxsize=65536)
def lower_bound(hits: int, rows: int) -> float | None:
    """One-sided Clopper-Pearson lower bound on hits/rows at ``CONFIDENCE``: the
    ``1 - CONFIDENCE`` quantile of Beta(hits, rows - hits + 1)."""
    if rows == 0:
        return None
    if hits == 0:
        return 0.0
    return float(betaincinv(hits, rows - hits + 1, 1 - CONFIDENCE))


@dataclass(frozen=True)
class Support:
    rows: int
    hits: int

    @property
    def precision(self) -> float | None:
        return self.hits / self.rows if self.rows else None

    @property
    def lower(self) -> float | None:
        return lower_bound(self.hits, self.rows)

    def meets(self, threshold: float, min_support: int) -> bool:
        lower = self.lower
        return self.rows >= min_support and lower is not None and lower >= threshold

    def rank(self, threshold: float, min_support: int) -> tuple[bool, float, int]:
        lower = self.lower
        return self.meets(threshold, min_support), -1.0 if lower is None else lower, self.rows


def _labels_of(context: ModelContext) -> dict[str, dict[str, str]]:
    return {
        f.name: {category_text(k): str(v) for k, v in (f.labels or {}).items()}
        for f in context.input_schema.features
    }


def _text(condition: dict[str, Any], labels: dict[str, dict[str, str]] | None = None) -> str:
    name = condition["feature"]
    if condition.get("missing"):
        return f"{name} is missing"
    if "equals" in condition:
        label = (labels or {}).get(name, {}).get(condition["equals"])
        return f"{name} = {condition['equals']}" + (f" ({label})" if label else "")
    above, at_most = condition.get("above"), condition.get("at_most")
    if above is not None and at_most is not None:
        return f"{above:.2f} < {name} <= {at_most:.2f}"
    if at_most is not None:
        return f"{name} <= {at_most:.2f}"
    return f"{name} > {above:.2f}"


def _own_value(feature: FeatureEntry, value: Any) -> dict[str, Any] | None:
    """The condition a missing value, or a category alibi does not know, must be read as."""
    if _is_missing(value):
        return {"feature": feature.name, "missing": True}
    if not feature.numeric and category_text(value) not in {
        category_text(c) for c in feature.categories or []
    }:
        return {"feature": feature.name, "equals": category_text(value)}
    return None


def _own_bin(
    explainer: AnchorTabular, encoding: _Encoding, row: pd.DataFrame, index: int
) -> dict[str, Any]:
    """The condition 'in the same quartile bin (or category) as this applicant'."""
    feature = encoding.features[index]
    name = feature.name
    value = row[name].iloc[0]
    own = _own_value(feature, value)
    if own is not None:
        return own
    if index in encoding.categories:
        return {"feature": name, "equals": str(value)}
    edges = _edges(explainer, index)
    position = int(np.searchsorted(edges, float(value), side="left"))
    return {
        "feature": name,
        "above": float(edges[position - 1]) if position > 0 else None,
        "at_most": float(edges[position]) if position < len(edges) else None,
    }


def _candidates(
    explainer: AnchorTabular, encoding: _Encoding, row: pd.DataFrame, index: int
) -> list[dict[str, Any]]:
    """Conditions on one feature that hold for the applicant: its own quartile bin (or category,
    or missing), and for a number each one-sided condition at a bin edge ("income > 37097.72")."""
    own = _own_bin(explainer, encoding, row, index)
    feature = encoding.features[index]
    if index in encoding.categories or "above" not in own:
        return [own]
    value = float(row[feature.name].iloc[0])
    sides = [
        {"feature": feature.name, "above": None, "at_most": float(e)}
        if value <= e
        else {"feature": feature.name, "above": float(e), "at_most": None}
        for e in _edges(explainer, index)
    ]
    return [own, *(c for c in sides if c != own)]


def _search(
    starts: list[list[dict[str, Any]]],
    pool: list[dict[str, Any]],
    measure: Any,
    rank: Any,
) -> list[tuple[list[dict[str, Any]], Any]]:
    """Beam search over conjunctions of the pool (at most one condition per feature), from each
    starting rule: a rule that meets the threshold is kept and not narrowed further; of the
    others, the ``BEAM`` best (by lower bound, then rows) are extended by one condition, while
    that improves on the rule they came from. Returns every rule measured, with its support."""
    seen: dict[str, tuple[list[dict[str, Any]], Any]] = {}

    def key(conds: list[dict[str, Any]]) -> str:
        return " AND ".join(sorted(_text(c) for c in conds))

    def add(conds: list[dict[str, Any]]) -> Any:
        k = key(conds)
        if k not in seen:
            seen[k] = (conds, measure(conds))
        return seen[k][1]

    beam = [(s, add(s)) for s in starts]
    while beam:
        extended = []
        for conds, support in beam:
            if rank(support)[0]:
                continue
            used = {c["feature"] for c in conds}
            for condition in pool:
                if condition["feature"] in used:
                    continue
                grown = [*conds, condition]
                if key(grown) in seen:
                    continue
                measured = add(grown)
                if rank(measured) > rank(support):
                    extended.append((grown, measured))
        extended.sort(key=lambda item: (rank(item[1]), key(item[0])), reverse=True)
        beam = extended[:BEAM]
    return list(seen.values())


def _rule_key(conditions: list[dict[str, Any]]) -> str:
    """Orders equally good rules the same way every time (larger sorts first)."""
    return " AND ".join(sorted(_text(c) for c in conditions))


def message_for(support: Support, threshold: float, min_support: int, own: bool) -> str | None:
    others = " other than the applicant's own" if own else ""
    if support.meets(threshold, min_support):
        return None
    if support.rows == 0:
        return (
            f"no reliable rule: the best rule found matches no training rows{others}, so its "
            "precision cannot be measured"
        )
    precision, lower = support.precision, support.lower
    assert precision is not None
    assert lower is not None
    if support.rows < min_support:
        return (
            f"no reliable rule: the best rule found covers only {support.rows} training "
            f"rows{others}, fewer than the minimum support of {min_support} (precision "
            f"{precision:.3f} there, {CONFIDENCE:.0%} lower bound {lower:.3f})"
        )
    return (
        f"no reliable rule: the best rule found has precision {precision:.3f} on "
        f"{support.rows} training rows{others}, but its {CONFIDENCE:.0%} lower confidence "
        f"bound {lower:.3f} is below the threshold {threshold}"
    )


def explain_anchor(
    context: ModelContext,
    features: dict[str, Any],
    label: Any,
    threshold: float,
    seed: int,
    min_support: int = MIN_SUPPORT,
) -> dict[str, Any]:
    explainer, encoding = _explainer(context, seed)
    row = to_frame(context.input_schema, [features])
    x = encoding.encode(row)
    lock = context.cached("anchor-lock", threading.Lock)
    with lock, GLOBAL_RNG:
        np.random.seed(seed)
        explanation = explainer.explain(x, threshold=threshold, batch_size=200)
    by_name = context.input_schema.by_name
    alibi_rule = []
    for text in explanation.anchor:
        condition = parse_condition(text, explainer, encoding.names)
        feature = by_name[condition["feature"]]
        alibi_rule.append(_own_value(feature, row[feature.name].iloc[0]) or condition)
    labels = np.asarray(training_labels(context), dtype=object)
    own = explained_rows(context, row)
    others = ~own
    same = labels == str(label)
    total = int(others.sum())

    def measure(conds: list[dict[str, Any]]) -> Support:
        mask = holds(conds, context.train) & others
        return Support(rows=int(mask.sum()), hits=int((mask & same).sum()))

    def rank(support: Support) -> tuple[bool, float, int]:
        return support.rank(threshold, min_support)

    pool = list(alibi_rule)
    for i in range(len(encoding.names)):
        pool += [c for c in _candidates(explainer, encoding, row, i) if c not in pool]
    found = _search([alibi_rule, []], pool, measure, rank)
    meeting = [(conds, sup) for conds, sup in found if sup.meets(threshold, min_support)]
    if meeting:
        conditions, support = max(
            meeting, key=lambda m: (m[1].rows, -len(m[0]), m[1].hits, _rule_key(m[0]))
        )
    else:
        conditions, support = max(found, key=lambda m: (rank(m[1]), -len(m[0]), _rule_key(m[0])))
    alibi_texts = {_text(c) for c in alibi_rule}
    source = (
        "alibi"
        if {_text(c) for c in conditions} == alibi_texts
        else "alibi, refined"
        if alibi_texts and alibi_texts <= {_text(c) for c in conditions}
        else "searched from the applicant's bins"
    )
    added = [c for c in conditions if _text(c) not in alibi_texts]
    meets = support.meets(threshold, min_support)
    names = _labels_of(context)
    texts = [_text(c, names) for c in conditions]
    in_training = bool(own.any())
    return {
        "rule": " AND ".join(texts)
        if texts
        else "(empty anchor: the model decides this way for almost everyone)"
        if meets
        else "(no condition: every training row)",
        "conditions": conditions,
        "label": label,
        "precision": support.precision,
        "precision_lower_bound": support.lower,
        "bound": BOUND,
        "coverage": support.rows / total if total else None,
        "coverage_rows": support.rows,
        "min_support": min_support,
        "threshold": threshold,
        "meets_threshold": meets,
        "reliable": meets,
        "explained_row_in_training": in_training,
        "training_rows": {
            "matching": support.rows,
            "total": total,
            "left_out_as_the_explained_row": int(own.sum()),
        },
        "alibi_estimate": {
            "rule": " AND ".join(explanation.anchor),
            "precision": float(explanation.precision),
            "coverage": float(explanation.coverage),
        },
        "source": source,
        "refined": [_text(c, names) for c in added] if source == "alibi, refined" else [],
        "message": message_for(support, threshold, min_support, in_training),
        "seed": seed,
        "method": f"alibi {library_versions()['alibi']} AnchorTabular (quartile bins of the "
        "training rows) as the starting point of a beam search over the applicant's own "
        "conditions; precision and coverage measured exactly on the training rows without the "
        "explained row, met only with a one-sided 95% Clopper-Pearson lower bound at the "
        f"threshold and at least {min_support} rows",
        "background": {"source": context.rows_source},
    }
