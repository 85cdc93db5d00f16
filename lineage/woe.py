"""Learning a scorecard's bins and encoding them by weight of evidence (``lineage.scorecard``
says what both are). A scikit-learn transformer, so a scorecard is an ordinary Pipeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from lineage.scorecard import bin_count, bin_index, is_missing, woe

PREBINS = 20  # the fine quantile bins monotone binning starts from


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
    present = [i for i, v in enumerate(values) if not is_missing(v)]
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
            n_bins = bin_count(spec)
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
