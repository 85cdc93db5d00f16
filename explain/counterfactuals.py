"""Counterfactuals: the smallest changes to an applicant's input that flip the decision. Pure.

A documented, seeded search of our own (dice-ml was considered: it pulls its own pinned
dependencies and gives no hard guarantee for the spec's constraints, which we must enforce
exactly). Only features that may change are searched:

* ``immutable`` features never change; protected attributes are never model inputs at all;
* a value that is missing (null) in the applicant's input stays missing: the search never makes
  up a value the applicant did not give, unless the feature's ``transitions`` name ``"null"``
  as a starting point (categorical features only);
* a numeric value stays within the spec's bounds (or, without bounds, the range seen in
  training), and moves only in its ``direction`` (``increase``: only up; ``decrease``: only down);
* a categorical value changes to another category the model knows, and only along the
  actionable changes the schema declares: ``transitions`` (from a code, the codes it may change
  to; a code the table does not list may not change), and ``order`` with ``direction`` (only up
  or only down the order). Without either, any other category is allowed;
* the linear constraints between numeric features (``{"left": a, "op": ">=", "right": b}``)
  that the applicant's own input satisfies keep holding: a random edit that breaks one is
  repaired by the cheapest move of either side to a candidate value that restores it (or by
  dropping that side's edit), else discarded, and a smaller variant that breaks one is never
  used. A constraint the applicant's input already breaks, or cannot be checked because a side
  is missing, is reported and not enforced.

Candidate values are values that occur in the training rows (41 quantiles per numeric feature,
every allowed category), so a suggestion is always something real applicants have. The search:

1. draws 1,000 random sparse edits (1 to 3 features) with ``numpy.random.default_rng(seed)``,
   repairs them for the linear constraints, and scores them in one batch;
2. keeps the 40 closest that flip, and for each one keeps the smallest subset of its edits that
   still flips;
3. walks each numeric edit back towards the original value while the decision stays flipped
   (two rounds of coordinate descent over the candidate grid);
4. picks up to ``k`` diverse results greedily: each next pick minimises its distance minus its
   dissimilarity to the ones already picked (ties: the more plausible first).

Distance is L1 in units of each feature's robust spread in the training rows (IQR / 1.349,
falling back to the standard deviation, then 1); a changed category counts 1. Every result is
then scored again, alone, through the serving path, and only confirmed flips are returned.

Each result's plausibility is the same distance, over all features, from the changed input to the
nearest training row the model assigns the target class (missing against present counts 1,
missing against missing 0), and where that distance falls among the distances from target-class
training rows to their own nearest target-class neighbour: a quantile near 1 means the changed
input is further from real applicants of that class than almost any of them is from another.
Results are ordered by distance, the plausibility breaking ties.

When fewer than ``k`` are returned the answer says why (``shortfall_reason``), with how many
candidates were scored and what constrained them. The same decision, k and seed always give the
same answer.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from explain.context import ModelContext
from lineage.input_schema import FeatureEntry, InputSchema, to_frame
from lineage.spec import category_text

SAMPLES = 1000
KEEP = 40
GRID = 41
# Target-class training rows used as the reference for the plausibility quantile (evenly spaced,
# so no random draw is involved).
REFERENCE_ROWS = 500
# The key of ``transitions`` that lists what a missing categorical value may change to.
NULL_KEY = "null"
PLAUSIBILITY_METHOD = (
    "L1 over all features in units of each numeric feature's robust spread (IQR/1.349) in the "
    "training rows, a different category or missing against present counting 1, to the nearest "
    "training row the model assigns the target class; the quantile is where that distance falls "
    "among target-class training rows' distances to their nearest target-class neighbour"
)


@dataclass(frozen=True)
class Space:
    name: str
    numeric: bool
    candidates: tuple[Any, ...]
    spread: float
    integral: bool


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def robust_spread(observed: Any) -> float:
    """IQR / 1.349 (the standard deviation, for normal data), else the standard deviation,
    else 1: the unit distances are measured in."""
    q1, q3 = np.quantile(observed, [0.25, 0.75])
    return float((q3 - q1) / 1.349) or float(np.std(observed)) or 1.0


def categorical_targets(feature: FeatureEntry, current: Any) -> tuple[list[Any], str]:
    """The categories (as declared) this feature may change to from ``current``, and the rule
    that allowed them: ``transitions``, ``order`` with its direction, both, or ``any``."""
    categories = list(feature.categories or [])
    declared = {category_text(c): c for c in categories}
    transitions = {category_text(k): v for k, v in (feature.transitions or {}).items()}
    order = feature.order
    direction = feature.direction
    if _is_missing(current):
        allowed = transitions.get(NULL_KEY)
        if allowed is None:
            return [], "kept missing"
        texts = [category_text(c) for c in allowed]
        return [declared[c] for c in texts if c in declared], "transitions from null"
    code = category_text(current)
    allowed_codes = [c for c in declared if c != code]
    rules = []
    if feature.transitions is not None:
        listed = {category_text(c) for c in transitions.get(code, [])}
        allowed_codes = [c for c in allowed_codes if c in listed]
        rules.append("transitions")
    if order is not None:
        ranked = [category_text(c) for c in order]
        if code not in ranked:
            allowed_codes = []
        else:
            position = ranked.index(code)
            if direction == "increase":
                along = set(ranked[position + 1 :])
            elif direction == "decrease":
                along = set(ranked[:position])
            else:
                along = set(ranked) - {code}
            allowed_codes = [c for c in allowed_codes if c in along]
        rules.append(f"order ({direction})")
    return [declared[c] for c in allowed_codes], " and ".join(rules) or "any"


def _numeric_range(feature: FeatureEntry) -> tuple[float, float]:
    low, high = feature.bounds or feature.observed_range or (-np.inf, np.inf)
    return float(low), float(high)


def search_space(context: ModelContext, features: dict[str, Any]) -> list[Space]:
    protected = set(context.input_schema.protected_names)
    spaces = []
    for feature in context.input_schema.features:
        name = feature.name
        if feature.immutable or name in protected:
            continue
        current: Any = features.get(name)
        if feature.numeric:
            if _is_missing(current):
                continue  # a missing value is kept missing
            observed = context.train[name].dropna().to_numpy(dtype=float)
            if observed.size == 0:
                continue
            spread = robust_spread(observed)
            low, high = _numeric_range(feature)
            grid = np.unique(np.quantile(observed, np.linspace(0, 1, GRID), method="inverted_cdf"))
            x = float(current)
            keep = (grid >= low) & (grid <= high) & (grid != x)
            if feature.direction == "increase":
                keep &= grid > x
            elif feature.direction == "decrease":
                keep &= grid < x
            integral = bool(np.all(np.equal(np.mod(observed, 1), 0)))
            values = tuple(int(v) if integral else float(v) for v in grid[keep])
            spaces.append(Space(name, True, values, spread, integral))
        else:
            allowed, _rule = categorical_targets(feature, current)
            spaces.append(Space(name, False, tuple(allowed), 1.0, False))
    return [s for s in spaces if s.candidates]


@dataclass(frozen=True)
class Linear:
    """``big >= small`` between two numeric features (a ``<=`` constraint is turned around)."""

    big: str
    small: str
    text: str

    def holds(self, record: dict[str, Any]) -> bool | None:
        """None when a side is missing: the constraint cannot be checked."""
        a: Any = record.get(self.big)
        b: Any = record.get(self.small)
        if _is_missing(a) or _is_missing(b):
            return None
        return float(a) >= float(b)


def linear_constraints(
    schema: InputSchema, features: dict[str, Any]
) -> tuple[list[Linear], list[dict[str, str]]]:
    """The schema's linear constraints this search enforces, and those it does not, with why."""
    numeric = {f.name for f in schema.features if f.numeric}
    enforced: list[Linear] = []
    skipped: list[dict[str, str]] = []
    for entry in schema.constraints or []:
        left, op, right = entry.left, entry.op, entry.right
        text = f"{left} {op} {right}"
        if left not in numeric or right not in numeric:
            skipped.append(
                {"constraint": text, "reason": "not a >= or <= between numeric features"}
            )
            continue
        constraint = Linear(left, right, text) if op == ">=" else Linear(right, left, text)
        state = constraint.holds(features)
        if state is None:
            skipped.append({"constraint": text, "reason": "a side is missing in this input"})
        elif not state:
            skipped.append({"constraint": text, "reason": "this input already breaks it"})
        else:
            enforced.append(constraint)
    return enforced, skipped


@dataclass
class Feasibility:
    """Checks (and repairs) edits against the enforced linear constraints, counting both."""

    features: dict[str, Any]
    constraints: list[Linear]
    spaces: dict[str, Space]
    cost: Any
    repaired: int = 0
    discarded: int = 0

    def ok(self, edit: dict[str, Any]) -> bool:
        record = {**self.features, **edit}
        return all(c.holds(record) is not False for c in self.constraints)

    def _options(
        self, edit: dict[str, Any], name: str, at_least: bool, bound: float
    ) -> list[dict[str, Any]]:
        """Edits that move ``name`` to a candidate value with ``value >= bound`` (``at_least``)
        or ``<= bound``, or that leave ``name`` at the applicant's value if that fits."""
        space = self.spaces.get(name)
        if space is None:
            return []

        def fits(value: Any) -> bool:
            return float(value) >= bound if at_least else float(value) <= bound

        rest = {k: v for k, v in edit.items() if k != name}
        options = [{**rest, name: v} for v in space.candidates if fits(v)]
        if fits(self.features[name]):
            options.append(rest)
        return options

    def repair(self, edit: dict[str, Any]) -> dict[str, Any] | None:
        """The edit itself if feasible, else its cheapest repair, else None (both counted)."""
        if self.ok(edit):
            return edit
        current = edit
        for _ in range(len(self.constraints) + 1):
            record = {**self.features, **current}
            broken = [c for c in self.constraints if c.holds(record) is False]
            if not broken:
                break
            c = broken[0]
            options = self._options(current, c.big, True, float(record[c.small]))
            options += self._options(current, c.small, False, float(record[c.big]))
            options = [o for o in options if o]
            if not options:
                current = {}
                break
            current = min(options, key=lambda o: (self.cost(o), _key(o)))
        if not current or not self.ok(current):
            self.discarded += 1
            return None
        self.repaired += 1
        return current


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
    for _ in range(n):
        m = int(rng.integers(1, min(3, len(spaces)) + 1))
        chosen = rng.choice(len(spaces), size=m, replace=False)
        edit = {}
        for index in sorted(int(i) for i in chosen):
            space = spaces[index]
            edit[space.name] = space.candidates[int(rng.integers(len(space.candidates)))]
        edits.append(edit)
    return edits


def _smallest_subsets(
    scorer: _Scorer, found: list[dict[str, Any]], cost: Any, feasible: Feasibility
) -> list[dict[str, Any]]:
    variants: list[tuple[int, dict[str, Any]]] = []
    for i, edit in enumerate(found):
        names = sorted(edit)
        for size in range(1, len(names)):
            for subset in itertools.combinations(names, size):
                variant = {n: edit[n] for n in subset}
                if feasible.ok(variant):
                    variants.append((i, variant))
                else:
                    feasible.discarded += 1
    best = list(found)
    for (i, variant), ok in zip(variants, scorer.flips([v for _, v in variants]), strict=True):
        if ok and cost(variant) < cost(best[i]):
            best[i] = variant
    return best


def _walk_back(
    scorer: _Scorer,
    found: list[dict[str, Any]],
    spaces: dict[str, Space],
    cost: Any,
    feasible: Feasibility,
) -> list[dict[str, Any]]:
    variants: list[tuple[int, dict[str, Any]]] = []
    for i, edit in enumerate(found):
        for name, value in edit.items():
            space = spaces[name]
            current: Any = scorer.features.get(name)
            if not space.numeric or _is_missing(current):
                continue
            x = float(current)
            for candidate in space.candidates:
                if abs(float(candidate) - x) < abs(float(value) - x):
                    variant = {**edit, name: candidate}
                    if feasible.ok(variant):
                        variants.append((i, variant))
                    else:
                        feasible.discarded += 1
    best = list(found)
    for (i, variant), ok in zip(variants, scorer.flips([v for _, v in variants]), strict=True):
        if ok and cost(variant) < cost(best[i]):
            best[i] = variant
    return best


def _diverse(
    found: list[dict[str, Any]], k: int, spaces: dict[str, Space], cost: Any, tie: Any
) -> list[dict[str, Any]]:
    unique = {_key(e): e for e in found}
    pool = sorted(unique.values(), key=lambda e: (cost(e), tie(e), _key(e)))
    chosen: list[dict[str, Any]] = []
    while pool and len(chosen) < k:
        if not chosen:
            pick = pool[0]
        else:
            pick = min(
                pool,
                key=lambda e: (
                    cost(e) - min(_dissimilarity(spaces, e, c) for c in chosen),
                    tie(e),
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


class Plausibility:
    """Distances from changed inputs to the training rows the model assigns the target class."""

    CHUNK = 128  # rows compared at once against every target-class row (bounds the memory)

    def __init__(self, schema: InputSchema, train: pd.DataFrame, target_rows: Any) -> None:
        self.schema = schema
        self.numeric = [f.name for f in schema.features if f.numeric]
        self.categorical = [f.name for f in schema.features if not f.numeric]
        self.spreads = np.array(
            [self._spread(train[name].to_numpy(dtype=float)) for name in self.numeric]
        )
        rows = train.loc[np.asarray(target_rows, dtype=bool)]
        self.num, self.cat = self._encode(rows)
        n = len(rows)
        self.reference: NDArray[np.float64] = np.array([])
        if n >= 2:
            picks = np.unique(np.linspace(0, n - 1, min(n, REFERENCE_ROWS)).round().astype(int))
            self.reference = np.sort(self._nearest(self.num[picks], self.cat[picks], picks))

    @staticmethod
    def _spread(values: NDArray[np.float64]) -> float:
        observed = values[~np.isnan(values)]
        return robust_spread(observed) if observed.size else 1.0

    def _encode(self, frame: pd.DataFrame) -> tuple[NDArray[np.float64], NDArray[np.object_]]:
        num = (
            frame[self.numeric].to_numpy(dtype=float) if self.numeric else np.zeros((len(frame), 0))
        )
        cat = np.empty((len(frame), len(self.categorical)), dtype=object)
        for j, name in enumerate(self.categorical):
            column = frame[name]
            missing = column.isna().to_numpy()
            cat[:, j] = column.astype(str).to_numpy(dtype=object)
            cat[missing, j] = None
        return num, cat

    def _nearest(
        self,
        num: NDArray[np.float64],
        cat: NDArray[np.object_],
        own: NDArray[np.int64] | None = None,
    ) -> NDArray[np.float64]:
        """Each row's distance to its nearest target-class row (``own``: the row's own index
        among them, which is not its own neighbour)."""
        nearest = np.empty(len(num))
        for start in range(0, len(num), self.CHUNK):
            stop = min(start + self.CHUNK, len(num))
            total = np.zeros((stop - start, len(self.num)))
            for j in range(num.shape[1]):
                a, b = num[start:stop, j][:, None], self.num[:, j][None, :]
                gap = np.abs(a - b) / self.spreads[j]
                one_missing = np.isnan(a) ^ np.isnan(b)
                total += np.where(np.isnan(gap), np.where(one_missing, 1.0, 0.0), gap)
            for j in range(cat.shape[1]):
                total += (cat[start:stop, j][:, None] != self.cat[:, j][None, :]).astype(float)
            if own is not None:
                total[np.arange(stop - start), own[start:stop]] = np.inf
            nearest[start:stop] = total.min(axis=1)
        return nearest

    def of(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not records or not len(self.num):
            return [
                {"nearest_target_class_distance": None, "distance_quantile": None} for _ in records
            ]
        num, cat = self._encode(to_frame(self.schema, records))
        result = []
        for d in self._nearest(num, cat):
            quantile = (
                float(np.searchsorted(self.reference, d, side="right") / len(self.reference))
                if len(self.reference)
                else None
            )
            result.append(
                {
                    "nearest_target_class_distance": round(float(d), 12),
                    "distance_quantile": None if quantile is None else round(quantile, 6),
                }
            )
        return result


def plausibility_for(context: ModelContext, target: Any) -> Plausibility:
    from explain.anchors import training_labels

    labels = np.asarray(training_labels(context), dtype=object)  # outside the cache lock
    result: Plausibility = context.cached(
        ("cf-plausibility", str(target)),
        lambda: Plausibility(context.input_schema, context.train, labels == str(target)),
    )
    return result


def describe_constraints(
    context: ModelContext,
    features: dict[str, Any],
    spaces: list[Space],
    enforced: list[Linear],
    skipped: list[dict[str, str]],
) -> dict[str, Any]:
    schema = context.input_schema
    protected = sorted(schema.protected_names)
    categorical: dict[str, Any] = {}
    bounds: dict[str, list[float | None]] = {}
    for feature in schema.features:
        name = feature.name
        if feature.immutable or name in protected:
            continue
        if feature.numeric:
            bounds[name] = [v if math.isfinite(v) else None for v in _numeric_range(feature)]
        else:
            allowed, rule = categorical_targets(feature, features.get(name))
            categorical[name] = {"allowed": [_plain(v) for v in allowed], "rule": rule}
    return {
        "changeable": sorted(s.name for s in spaces),
        "immutable": sorted(f.name for f in schema.features if f.immutable),
        "protected_never_inputs": protected,
        "directions": {f.name: f.direction for f in schema.features if f.direction != "any"},
        "bounds": bounds,
        "categorical_transitions": categorical,
        "linear": {"enforced": [c.text for c in enforced], "not_enforced": skipped},
        "kept_null": sorted(
            f.name
            for f in schema.features
            if _is_missing(features.get(f.name)) and not any(s.name == f.name for s in spaces)
        ),
    }


def _shortfall(
    k: int,
    returned: int,
    constraints: dict[str, Any],
    search: dict[str, Any],
    scored: int,
) -> str | None:
    if returned >= k:
        return None
    if not constraints["changeable"]:
        return (
            f"asked for {k}, found {returned}: no feature may change (immutable, protected, "
            "missing and kept missing, or no allowed value in its bounds, direction or "
            "transitions), so nothing was searched"
        )
    parts = [
        f"asked for {k}, found {returned}",
        f"{search['random_edits']} random edits of 1 to 3 of the "
        f"{len(constraints['changeable'])} changeable features "
        f"({', '.join(constraints['changeable'])}) gave {search['flipping_edits']} that flip "
        f"the decision, which reduce to {search['distinct_minimal']} distinct minimal changes",
        f"{scored} candidates scored in all",
    ]
    if search["discarded_for_constraints"] or search["repaired_for_constraints"]:
        parts.append(
            f"{search['discarded_for_constraints']} candidates discarded and "
            f"{search['repaired_for_constraints']} repaired for the linear constraints "
            f"({', '.join(constraints['linear']['enforced'])})"
        )
    if search["not_confirmed"]:
        parts.append(f"{search['not_confirmed']} not confirmed when scored alone")
    limits = []
    for key, what in (("immutable", "immutable"), ("kept_null", "missing, kept missing")):
        if constraints[key]:
            limits.append(f"{what}: {', '.join(constraints[key])}")
    if constraints["directions"]:
        limits.append(
            "directions: " + ", ".join(f"{n} {d}" for n, d in constraints["directions"].items())
        )
    limited = {
        n: c for n, c in constraints["categorical_transitions"].items() if c["rule"] != "any"
    }
    if limited:
        limits.append(
            "category changes limited by "
            + ", ".join(
                f"{n} ({c['rule']}: {len(c['allowed'])} allowed)" for n, c in limited.items()
            )
        )
    if limits:
        parts.append("constrained by " + "; ".join(limits))
    return "; ".join(parts)


def _change(feature: FeatureEntry | None, before: Any, after: Any) -> dict[str, Any]:
    change = {"from": before, "to": after}
    declared = None if feature is None else feature.labels
    labels = {category_text(k): v for k, v in (declared or {}).items()}
    if labels:
        change["from_label"] = None if _is_missing(before) else labels.get(category_text(before))
        change["to_label"] = labels.get(category_text(after))
    return change


def find_counterfactuals(
    context: ModelContext, features: dict[str, Any], label: Any, k: int, seed: int
) -> dict[str, Any]:
    classes = context.input_schema.classes
    target = classes[0] if str(label) == str(classes[1]) else classes[1]
    spaces_list = search_space(context, features)
    spaces = {s.name: s for s in spaces_list}
    scorer = _Scorer(context, features, target)
    enforced, skipped = linear_constraints(context.input_schema, features)

    def cost(edit: dict[str, Any]) -> float:
        return _distance(spaces, features, edit)

    feasible = Feasibility(features, enforced, spaces, cost)
    by_name = context.input_schema.by_name
    search = {
        "random_edits": 0,
        "flipping_edits": 0,
        "distinct_minimal": 0,
        "repaired_for_constraints": 0,
        "discarded_for_constraints": 0,
        "not_confirmed": 0,
    }
    results: list[dict[str, Any]] = []
    if spaces_list:
        plausibility = plausibility_for(context, target)
        rng = np.random.default_rng(seed)
        drawn = _random_edits(spaces_list, rng, SAMPLES)
        search["random_edits"] = len(drawn)
        edits = [r for r in (feasible.repair(e) for e in drawn) if r]
        flipped = [e for e, ok in zip(edits, scorer.flips(edits), strict=True) if ok]
        flipped = sorted({_key(e): e for e in flipped}.values(), key=lambda e: (cost(e), _key(e)))
        search["flipping_edits"] = len(flipped)
        found = _smallest_subsets(scorer, flipped[:KEEP], cost, feasible)
        for _round in range(2):
            found = _walk_back(scorer, found, spaces, cost, feasible)
        distinct = list({_key(e): e for e in found}.values())
        search["distinct_minimal"] = len(distinct)
        records = [{**features, **{n: _plain(v) for n, v in e.items()}} for e in distinct]
        plausible = dict(zip((_key(e) for e in distinct), plausibility.of(records), strict=True))

        def tie(edit: dict[str, Any]) -> float:
            d = plausible[_key(edit)]["nearest_target_class_distance"]
            return math.inf if d is None else float(d)

        for edit in _diverse(distinct, k, spaces, cost, tie):
            record = {**features, **{n: _plain(v) for n, v in edit.items()}}
            score = float(context.model.scores([record])[0])
            new_label = context.model.label_for(score)
            if str(new_label) != str(target):
                search["not_confirmed"] += 1
                continue
            results.append(
                {
                    "changes": {
                        name: _change(by_name.get(name), features.get(name), _plain(edit[name]))
                        for name in sorted(edit)
                    },
                    "label": new_label,
                    "score": score,
                    "distance": round(cost(edit), 12),
                    "confirmed": True,
                    "plausibility": {**plausible[_key(edit)], "method": PLAUSIBILITY_METHOD},
                }
            )
    search["repaired_for_constraints"] = feasible.repaired
    search["discarded_for_constraints"] = feasible.discarded

    def order(result: dict[str, Any]) -> tuple[float, float]:
        d = result["plausibility"]["nearest_target_class_distance"]
        return result["distance"], math.inf if d is None else d

    results.sort(key=order)
    constraints = describe_constraints(context, features, spaces_list, enforced, skipped)
    return {
        "from_label": label,
        "target_label": target,
        "k": k,
        "requested": k,
        "returned": len(results),
        "counterfactuals": results,
        "seed": seed,
        "method": "govern seeded sparse search (random edits, minimal subsets, walk-back)",
        "searched": scorer.scored,
        "candidates_searched": scorer.scored,
        "search": search,
        "distance": "L1 in units of each feature's robust spread (IQR/1.349 of the training "
        "rows); a changed category counts 1",
        "constraints": constraints,
        "shortfall_reason": _shortfall(k, len(results), constraints, search, scorer.scored),
        "message": None
        if results
        else f"no flip found among the {scorer.scored} candidates searched within the spec's "
        "constraints (see shortfall_reason); a larger or different change may still flip it",
    }
