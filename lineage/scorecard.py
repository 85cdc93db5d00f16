"""A logistic scorecard: bins, weight of evidence, and points. Pure: no I/O, no database.

This module is the scorecard's record (the points table, read by the card and the reasons,
with NumPy only); ``lineage.woe`` learns the bins and encodes them (scikit-learn).

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
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt, StrictStr

SMOOTHING = 0.5  # rows added to each count of a bin: a bin of one class keeps a finite weight
MISSING = "missing"
OTHER = "other"


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def bin_count(spec: Mapping[str, Any]) -> int:
    """Bins of one feature: the value bins, then the missing bin (always the last)."""
    if "edges" in spec:
        return len(spec["edges"]) + 2
    return len(spec["groups"]) + 1


def bin_index(spec: Mapping[str, Any], value: Any) -> int:
    """The bin a value (as the model sees it: a float, or a category's text) falls in."""
    if is_missing(value):
        return bin_count(spec) - 1
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
