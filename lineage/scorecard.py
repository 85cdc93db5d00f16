"""A logistic scorecard: binning, weight of evidence, and points. Pure: no I/O, no database.

A spec's ``scorecard`` trains what credit scorecards have been for decades:

1. **Bins.** Each numeric feature is cut into bins learned from the training rows: quantile
   bins, or (``monotone``) fine quantile bins merged until the positive-class rate rises or
   falls steadily across them, then merged again until none holds fewer than
   ``min_bin_share`` of the rows and there are at most ``max_bins``. Each category of a
   categorical feature is a bin; rare ones are pooled into ``other``, which also takes a
   category never seen in training. A missing value has its own bin.
2. **Weight of evidence.** Each bin is replaced by ln(share of positives in it / share of
   negatives in it), with half a row added to every count so that a small bin's weight stays
   finite.
3. **Logistic regression** on those weights, one coefficient per feature.
4. **Points.** The log-odds of the favourable class is turned into a score: ``base_score``
   points at odds of ``base_odds`` to 1, and ``pdo`` more points each time the odds double. The
   intercept is shared evenly across the features, so each bin carries its own points, and a
   subject's score is the sum of the points of their bins.

Reason codes for a scorecard are the features where the subject lost the most points against
the best bin of that feature (``points_lost``): the way scorecard lenders have written adverse
action notices. A bin with no training rows (a missing value never seen in training, a new
category) has a weight of 0: neutral, the population's odds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt, StrictStr
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

SMOOTHING = 0.5  # rows added to each count of a bin: a bin of one class keeps a finite weight
PREBINS = 20  # the fine quantile bins monotone binning starts from
MISSING = "missing"
OTHER = "other"


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# -- binning ------------------------------------------------------------------------------------


def _rates(events: NDArray[np.float64], counts: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.divide(events, counts, out=np.zeros_like(events), where=counts > 0)


def _merge(groups: list[Any], events: list[float], counts: list[float], i: int) -> None:
    """Merge bin i+1 into bin i."""
    groups[i] += groups.pop(i + 1)
    events[i] += events.pop(i + 1)
    counts[i] += counts.pop(i + 1)


def _merge_small(
    groups: list[list[int]], events: list[float], counts: list[float], least: float
) -> None:
    """While a bin holds fewer rows than ``least``, merge the smallest one into the neighbour
    whose rate is closest (the left one on a tie)."""
    while len(groups) > 1:
        small = [i for i, c in enumerate(counts) if c < least]
        if not small:
            return
        i = min(small, key=lambda j: (counts[j], j))
        rate = events[i] / counts[i] if counts[i] else 0.0
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(groups)]
        j = min(
            neighbours,
            key=lambda n: (abs((events[n] / counts[n] if counts[n] else 0.0) - rate), n),
        )
        _merge(groups, events, counts, min(i, j))


def _merge_closest(groups: list[Any], events: list[float], counts: list[float], most: int) -> None:
    """While there are more than ``most`` bins, merge the adjacent pair whose rates are closest."""
    while len(groups) > most:
        rates = [e / c if c else 0.0 for e, c in zip(events, counts, strict=True)]
        i = min(range(len(groups) - 1), key=lambda k: (abs(rates[k + 1] - rates[k]), k))
        _merge(groups, events, counts, i)


def _make_monotone(groups: list[list[int]], events: list[float], counts: list[float]) -> str:
    """Merge adjacent bins until the rate only rises or only falls (pool adjacent violators),
    in the direction the data leans; returns that direction."""
    rates = np.asarray([e / c for e, c in zip(events, counts, strict=True)])
    weights = np.asarray(counts)
    index = np.arange(len(rates), dtype=float)
    centred = index - np.average(index, weights=weights)
    rising = float(np.sum(weights * centred * (rates - np.average(rates, weights=weights)))) >= 0
    sign = 1.0 if rising else -1.0
    while True:
        rates = np.asarray([e / c for e, c in zip(events, counts, strict=True)])
        steps = sign * np.diff(rates)
        if len(steps) == 0 or steps.min() >= 0:
            return "rising" if rising else "falling"
        _merge(groups, events, counts, int(np.argmin(steps)))


def numeric_edges(
    values: NDArray[np.float64],
    y: NDArray[np.int_],
    method: str,
    max_bins: int,
    min_bin_share: float,
) -> tuple[list[float], str | None]:
    """The interior cut points for one numeric feature (a value v falls in the first bin whose
    upper edge is above it: ``searchsorted(edges, v, side="right")``), and for monotone
    binning the direction of the rate across the bins."""
    present = ~np.isnan(values)
    v, t = values[present], y[present]
    if len(v) == 0 or np.unique(v).size == 1:
        return [], None
    start = PREBINS if method == "monotone" else max_bins
    cuts = np.unique(np.quantile(v, np.linspace(0, 1, start + 1)[1:-1], method="linear"))
    cuts = [float(c) for c in cuts if c > v.min()]
    index = np.searchsorted(cuts, v, side="right")
    n = len(cuts) + 1
    counts = np.bincount(index, minlength=n).astype(float)
    events = np.bincount(index, weights=t, minlength=n).astype(float)
    # Each group is the list of fine bins it holds; a group's upper edge is its last bin's.
    groups = [[i] for i in range(n) if counts[i] > 0]
    ev = [float(events[g[0]]) for g in groups]
    ct = [float(counts[g[0]]) for g in groups]
    direction = None
    if method == "monotone" and len(groups) > 1:
        direction = _make_monotone(groups, ev, ct)
    _merge_small(groups, ev, ct, min_bin_share * len(v))
    _merge_closest(groups, ev, ct, max_bins)
    return [cuts[g[-1]] for g in groups[:-1]], direction


def category_groups(
    values: Sequence[Any], y: NDArray[np.int_], max_bins: int, min_bin_share: float
) -> list[list[str]]:
    """The categories of one feature in bins: each its own, rare ones (under
    ``min_bin_share`` of the rows) pooled into ``other`` (the last bin, empty when none is
    rare), and the rest merged by closest rate while there are more than ``max_bins``."""
    present = [i for i, v in enumerate(values) if not _is_missing(v)]
    keys = [str(values[i]) for i in present]
    outcome = y[present]
    seen = sorted(set(keys))
    counts = dict.fromkeys(seen, 0.0)
    events = dict.fromkeys(seen, 0.0)
    for key, event in zip(keys, outcome, strict=True):
        counts[key] += 1
        events[key] += float(event)
    least = min_bin_share * len(keys)
    rare = [k for k in seen if counts[k] < least]
    common = sorted((k for k in seen if counts[k] >= least), key=lambda k: events[k] / counts[k])
    groups = [[k] for k in common]
    ev = [events[k] for k in common]
    ct = [counts[k] for k in common]
    _merge_closest(groups, ev, ct, max(max_bins - (1 if rare else 0), 1))
    return [*groups, rare]


class WoeBinner(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Bins each column and replaces its value by its bin's weight of evidence (module doc).

    ``kind``: numeric columns (floats, NaN for missing) or categorical (text, NaN for
    missing). Fitted on y as 0/1. Its fitted bins are plain lists, read by ``points_table``.
    """

    def __init__(
        self,
        kind: Literal["numeric", "categorical"] = "numeric",
        method: Literal["monotone", "quantile"] = "monotone",
        max_bins: int = 6,
        min_bin_share: float = 0.05,
    ) -> None:
        self.kind = kind
        self.method = method
        self.max_bins = max_bins
        self.min_bin_share = min_bin_share

    def _columns(self, x: Any) -> list[NDArray[Any]]:
        if hasattr(x, "iloc"):
            return [x.iloc[:, j].to_numpy() for j in range(x.shape[1])]
        array = np.asarray(x, dtype=object)
        return [array[:, j] for j in range(array.shape[1])]

    def fit(self, x: Any, y: Any) -> WoeBinner:
        y = np.asarray(y, dtype=int)
        if set(np.unique(y)) - {0, 1}:
            raise ValueError("a scorecard is fitted on a 0/1 target")
        self.feature_names_in_ = np.asarray(
            list(x.columns) if hasattr(x, "columns") else [f"x{j}" for j in range(x.shape[1])],
            dtype=object,
        )
        self.n_features_in_ = len(self.feature_names_in_)
        self.bins_: list[dict[str, Any]] = []
        for column in self._columns(x):
            if self.kind == "numeric":
                values = np.asarray(column, dtype=float)
                edges, direction = numeric_edges(
                    values, y, self.method, self.max_bins, self.min_bin_share
                )
                spec: dict[str, Any] = {"edges": edges, "direction": direction}
            else:
                spec = {
                    "groups": category_groups(list(column), y, self.max_bins, self.min_bin_share)
                }
            index = self._index(spec, column)
            n_bins = _bin_count(spec)
            counts = np.bincount(index, minlength=n_bins).astype(float)
            events = np.bincount(index, weights=y, minlength=n_bins).astype(float)
            spec["counts"] = [int(c) for c in counts]
            spec["events"] = [int(e) for e in events]
            spec["woe"] = woe(events, counts, float(y.sum()), float(len(y) - y.sum()))
            self.bins_.append(spec)
        return self

    def _index(self, spec: Mapping[str, Any], column: Any) -> NDArray[np.int_]:
        return np.asarray([bin_index(spec, v) for v in column], dtype=int)

    def transform(self, x: Any) -> NDArray[np.float64]:
        check_is_fitted(self, "bins_")
        columns = self._columns(x)
        out = np.empty((len(columns[0]) if columns else 0, len(columns)), dtype=float)
        for j, (spec, column) in enumerate(zip(self.bins_, columns, strict=True)):
            weights = np.asarray(spec["woe"], dtype=float)
            out[:, j] = weights[self._index(spec, column)]
        return out

    def get_feature_names_out(self, input_features: Any = None) -> NDArray[Any]:
        check_is_fitted(self, "bins_")
        return np.asarray(self.feature_names_in_, dtype=object)


def _bin_count(spec: Mapping[str, Any]) -> int:
    """Bins of one feature: the value bins, then the missing bin (always the last)."""
    if "edges" in spec:
        return len(spec["edges"]) + 2
    return len(spec["groups"]) + 1


def bin_index(spec: Mapping[str, Any], value: Any) -> int:
    """The bin a value (as the model sees it: a float, or a category's text) falls in."""
    if _is_missing(value):
        return _bin_count(spec) - 1
    if "edges" in spec:
        return int(np.searchsorted(spec["edges"], float(value), side="right"))
    key = str(value)
    groups = spec["groups"]
    for i, group in enumerate(groups):
        if key in group:
            return i
    return len(groups) - 1  # unseen: pooled with the rare ones in ``other``


def woe(
    events: NDArray[np.float64], counts: NDArray[np.float64], positives: float, negatives: float
) -> list[float]:
    """ln(share of positives / share of negatives) per bin, each count smoothed by half a row;
    0 (neutral) for a bin no training row fell in."""
    n_bins = len(counts)
    result = []
    for e, c in zip(events, counts, strict=True):
        if c == 0:
            result.append(0.0)
            continue
        share_pos = (e + SMOOTHING) / (positives + SMOOTHING * n_bins)
        share_neg = (c - e + SMOOTHING) / (negatives + SMOOTHING * n_bins)
        result.append(float(math.log(share_pos / share_neg)))
    return result


def bin_labels(spec: Mapping[str, Any]) -> list[str]:
    """Each bin in words: "< 25000", "25000 to < 40000", ">= 40000", "car, home", "other"."""
    if "edges" in spec:
        edges = [_number(e) for e in spec["edges"]]
        if not edges:
            return ["any value", MISSING]
        labels = [f"< {edges[0]}"]
        labels += [f"{lo} to < {hi}" for lo, hi in itertools.pairwise(edges)]
        return [*labels, f">= {edges[-1]}", MISSING]
    groups = spec["groups"]
    labels = [", ".join(group) for group in groups[:-1]]
    rare = groups[-1]
    labels.append(f"{OTHER} ({', '.join(rare)}, or unseen)" if rare else f"{OTHER} (unseen)")
    return [*labels, MISSING]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


# -- points -------------------------------------------------------------------------------------


class ScoreBin(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: StrictStr
    rows: StrictInt
    positive_rate: StrictFloat | None
    woe: StrictFloat
    points: StrictFloat


class ScoredFeature(BaseModel):
    """One feature's bins (``edges`` for a numeric feature, ``groups`` of category texts for a
    categorical one; the missing bin last), and the most points it can give."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    feature: StrictStr
    coefficient: StrictFloat
    edges: list[StrictFloat] | None = None
    direction: StrictStr | None = None
    groups: list[list[StrictStr]] | None = None
    bins: list[ScoreBin]
    max_points: StrictFloat
    min_points: StrictFloat

    def bin_of(self, value: Any) -> int:
        spec = {"edges": self.edges} if self.edges is not None else {"groups": self.groups}
        return bin_index(spec, value)


class Scorecard(BaseModel):
    """The points table: recorded in the lineage, the input schema and the model card."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    binning: StrictStr
    pdo: StrictFloat
    base_score: StrictFloat
    base_odds: StrictFloat
    factor: StrictFloat
    offset: StrictFloat
    favourable_is_positive: bool
    features: list[ScoredFeature]

    def points(self, row: Mapping[str, Any]) -> dict[str, float]:
        """Each feature's points for one row as the model sees it (``to_frame``'s values)."""
        return {f.feature: f.bins[f.bin_of(row.get(f.feature))].points for f in self.features}

    def points_lost(self, row: Mapping[str, Any]) -> dict[str, float]:
        """Per feature, the points below the best bin of that feature."""
        points = self.points(row)
        return {f.feature: f.max_points - points[f.feature] for f in self.features}


def points_table(
    features: Sequence[str],
    binned: Sequence[Mapping[str, Any]],
    coefficients: Sequence[float],
    intercept: float,
    *,
    favourable_is_positive: bool,
    binning: str,
    pdo: float,
    base_score: float,
    base_odds: float,
) -> Scorecard:
    """Points per bin from the fitted binner's bins and the regression's coefficients.

    score = offset + factor * ln(odds of the favourable class), factor = pdo / ln 2, offset =
    base_score - factor * ln(base_odds). The regression's log-odds are the positive class's,
    turned when the favourable class is the negative one; the intercept's points are shared
    evenly across the features."""
    factor = pdo / math.log(2)
    offset = base_score - factor * math.log(base_odds)
    sign = 1.0 if favourable_is_positive else -1.0
    shared = (offset + factor * sign * intercept) / len(features)
    scored = []
    for name, spec, beta in zip(features, binned, coefficients, strict=True):
        labels = bin_labels(spec)
        bins = []
        for label, rows, events, weight in zip(
            labels, spec["counts"], spec["events"], spec["woe"], strict=True
        ):
            bins.append(
                ScoreBin(
                    label=label,
                    rows=int(rows),
                    positive_rate=round(events / rows, 6) if rows else None,
                    woe=round(float(weight), 12),
                    points=round(shared + factor * sign * float(beta) * float(weight), 9),
                )
            )
        values = [b.points for b in bins]
        scored.append(
            ScoredFeature(
                feature=name,
                coefficient=round(float(beta), 12),
                edges=[float(e) for e in spec["edges"]] if "edges" in spec else None,
                direction=spec.get("direction"),
                groups=[list(g) for g in spec["groups"]] if "groups" in spec else None,
                bins=bins,
                max_points=max(values),
                min_points=min(values),
            )
        )
    return Scorecard(
        binning=binning,
        pdo=float(pdo),
        base_score=float(base_score),
        base_odds=float(base_odds),
        factor=factor,
        offset=offset,
        favourable_is_positive=favourable_is_positive,
        features=scored,
    )
