"""Counterfactuals: the smallest changes to an applicant's input that flip the decision. Pure.

A documented, seeded search of our own (dice-ml was considered: it pulls its own pinned
dependencies and gives no hard guarantee for the spec's constraints, which we must enforce
exactly). Only features that may change are searched:

* ``immutable`` features never change; protected attributes are never model inputs at all;
* a numeric value stays within the spec's bounds (or, without bounds, the range seen in
  training), and moves only in its ``direction`` (``increase``: only up; ``decrease``: only down);
* a categorical value changes to another category the model knows.

Candidate values are values that occur in the training rows (41 quantiles per numeric feature,
every category), so a suggestion is always something real applicants have. The search:

1. draws 1,000 random sparse edits (1 to 3 features) with ``numpy.random.default_rng(seed)``
   and scores them in one batch;
2. keeps the 40 closest that flip, and for each one keeps the smallest subset of its edits that
   still flips;
3. walks each numeric edit back towards the original value while the decision stays flipped
   (two rounds of coordinate descent over the candidate grid);
4. picks up to ``k`` diverse results greedily: each next pick minimises its distance minus its
   dissimilarity to the ones already picked.

Distance is L1 in units of each feature's robust spread in the training rows (IQR / 1.349,
falling back to the standard deviation, then 1); a changed category counts 1. Every result is
then scored again, alone, through the serving path, and only confirmed flips are returned.
The same decision, k and seed always give the same answer.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from explain.context import ModelContext

SAMPLES = 1000
KEEP = 40
GRID = 41


@dataclass(frozen=True)
class Space:
    name: str
    numeric: bool
    candidates: tuple[Any, ...]
    spread: float
    integral: bool


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def robust_spread(observed: Any) -> float:
    """IQR / 1.349 (the standard deviation, for normal data), else the standard deviation,
    else 1: the unit distances are measured in."""
    q1, q3 = np.quantile(observed, [0.25, 0.75])
    return float((q3 - q1) / 1.349) or float(np.std(observed)) or 1.0


def search_space(context: ModelContext, features: dict[str, Any]) -> list[Space]:
    protected = {p["name"] for p in context.schema.get("protected", [])}
    spaces = []
    for feature in context.schema["features"]:
        name = feature["name"]
        if feature.get("immutable") or name in protected:
            continue
        current = features.get(name)
        column = context.train[name]
        if feature["type"] == "numeric":
            observed = column.dropna().to_numpy(dtype=float)
            if observed.size == 0:
                continue
            spread = robust_spread(observed)
            low, high = feature.get("bounds") or feature.get("observed_range") or (-np.inf, np.inf)
            grid = np.unique(np.quantile(observed, np.linspace(0, 1, GRID), method="inverted_cdf"))
            keep = (grid >= low) & (grid <= high)
            if not _is_missing(current):
                x = float(current)  # type: ignore[arg-type]
                keep &= grid != x
                if feature.get("direction") == "increase":
                    keep &= grid > x
                elif feature.get("direction") == "decrease":
                    keep &= grid < x
            integral = bool(np.all(np.equal(np.mod(observed, 1), 0)))
            values = tuple(int(v) if integral else float(v) for v in grid[keep])
            spaces.append(Space(name, True, values, spread, integral))
        else:
            values = tuple(c for c in feature.get("categories") or [] if c != str(current))
            spaces.append(Space(name, False, values, 1.0, False))
    return [s for s in spaces if s.candidates]


def _distance(spaces: dict[str, Space], features: dict[str, Any], edit: dict[str, Any]) -> float:
    total = 0.0
    for name, value in edit.items():
        space = spaces[name]
        if space.numeric and not _is_missing(features.get(name)):
            total += abs(float(value) - float(features[name])) / space.spread
        else:
            total += 1.0
    return total


def _key(edit: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in edit.items()))


def _dissimilarity(spaces: dict[str, Space], a: dict[str, Any], b: dict[str, Any]) -> float:
    total = float(len(set(a) ^ set(b)))
    for name in set(a) & set(b):
        space = spaces[name]
        if space.numeric:
            total += abs(float(a[name]) - float(b[name])) / space.spread
        elif a[name] != b[name]:
            total += 1.0
    return total


class _Scorer:
    def __init__(self, context: ModelContext, features: dict[str, Any], target: Any) -> None:
        self.context, self.features, self.target = context, features, str(target)
        self.scored = 0

    def flips(self, edits: list[dict[str, Any]]) -> list[bool]:
        if not edits:
            return []
        self.scored += len(edits)
        scores = self.context.model.scores([{**self.features, **edit} for edit in edits])
        labels = self.context.labels(np.asarray(scores))
        return [str(label) == self.target for label in labels]


def _random_edits(spaces: list[Space], rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    edits = []
    most = min(3, len(spaces))
    weights = np.array([0.4, 0.35, 0.25][:most])
    for _ in range(n):
        m = int(rng.choice(np.arange(1, most + 1), p=weights / weights.sum()))
        chosen = rng.choice(len(spaces), size=m, replace=False)
        edit = {}
        for index in sorted(int(i) for i in chosen):
            space = spaces[index]
            edit[space.name] = space.candidates[int(rng.integers(len(space.candidates)))]
        edits.append(edit)
    return edits


def _smallest_subsets(
    scorer: _Scorer, found: list[dict[str, Any]], cost: Any
) -> list[dict[str, Any]]:
    variants: list[tuple[int, dict[str, Any]]] = []
    for i, edit in enumerate(found):
        names = sorted(edit)
        for size in range(1, len(names)):
            for subset in itertools.combinations(names, size):
                variants.append((i, {n: edit[n] for n in subset}))
    best = list(found)
    for (i, variant), ok in zip(variants, scorer.flips([v for _, v in variants]), strict=True):
        if ok and cost(variant) < cost(best[i]):
            best[i] = variant
    return best


def _walk_back(
    scorer: _Scorer, found: list[dict[str, Any]], spaces: dict[str, Space], cost: Any
) -> list[dict[str, Any]]:
    variants: list[tuple[int, dict[str, Any]]] = []
    for i, edit in enumerate(found):
        for name, value in edit.items():
            space = spaces[name]
            current = scorer.features.get(name)
            if not space.numeric or _is_missing(current):
                continue
            x = float(current)  # type: ignore[arg-type]
            for candidate in space.candidates:
                if abs(float(candidate) - x) < abs(float(value) - x):
                    variants.append((i, {**edit, name: candidate}))
    best = list(found)
    for (i, variant), ok in zip(variants, scorer.flips([v for _, v in variants]), strict=True):
        if ok and cost(variant) < cost(best[i]):
            best[i] = variant
    return best


def _diverse(
    found: list[dict[str, Any]], k: int, spaces: dict[str, Space], cost: Any
) -> list[dict[str, Any]]:
    unique = {_key(e): e for e in found}
    pool = sorted(unique.values(), key=lambda e: (cost(e), _key(e)))
    chosen: list[dict[str, Any]] = []
    while pool and len(chosen) < k:
        if not chosen:
            pick = pool[0]
        else:
            pick = min(
                pool,
                key=lambda e: (
                    cost(e) - min(_dissimilarity(spaces, e, c) for c in chosen),
                    _key(e),
                ),
            )
        chosen.append(pick)
        pool = [e for e in pool if e is not pick]
    return chosen


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def find_counterfactuals(
    context: ModelContext, features: dict[str, Any], label: Any, k: int, seed: int
) -> dict[str, Any]:
    classes = context.schema["classes"]
    target = classes[0] if str(label) == str(classes[1]) else classes[1]
    spaces_list = search_space(context, features)
    spaces = {s.name: s for s in spaces_list}
    scorer = _Scorer(context, features, target)

    def cost(edit: dict[str, Any]) -> float:
        return _distance(spaces, features, edit)

    results: list[dict[str, Any]] = []
    if spaces_list:
        rng = np.random.default_rng(seed)
        edits = _random_edits(spaces_list, rng, SAMPLES)
        flipped = [e for e, ok in zip(edits, scorer.flips(edits), strict=True) if ok]
        flipped = sorted({_key(e): e for e in flipped}.values(), key=lambda e: (cost(e), _key(e)))
        found = _smallest_subsets(scorer, flipped[:KEEP], cost)
        for _round in range(2):
            found = _walk_back(scorer, found, spaces, cost)
        for edit in _diverse(found, k, spaces, cost):
            record = {**features, **{n: _plain(v) for n, v in edit.items()}}
            score = float(context.model.scores([record])[0])
            new_label = context.model.label_for(score)
            if str(new_label) != str(target):
                continue
            results.append(
                {
                    "changes": {
                        name: {"from": features.get(name), "to": _plain(edit[name])}
                        for name in sorted(edit)
                    },
                    "label": new_label,
                    "score": score,
                    "distance": round(cost(edit), 12),
                    "confirmed": True,
                }
            )
    results.sort(key=lambda r: r["distance"])
    return {
        "from_label": label,
        "target_label": target,
        "k": k,
        "counterfactuals": results,
        "seed": seed,
        "method": "govern seeded sparse search (random edits, minimal subsets, walk-back)",
        "searched": scorer.scored,
        "distance": "L1 in units of each feature's robust spread (IQR/1.349 of the training "
        "rows); a changed category counts 1",
        "constraints": {
            "changeable": sorted(spaces),
            "immutable": sorted(
                f["name"] for f in context.schema["features"] if f.get("immutable")
            ),
            "protected_never_inputs": sorted(
                p["name"] for p in context.schema.get("protected", [])
            ),
            "directions": {
                f["name"]: f["direction"]
                for f in context.schema["features"]
                if f.get("direction", "any") != "any"
            },
        },
        "message": None
        if results
        else "no change within the spec's constraints flips this decision",
    }
