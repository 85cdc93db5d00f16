"""The search for a less discriminatory alternative: its candidates and its verdicts. Pure.

A search space is a grid: estimator parameters; a treatment of the features (none, a subset
dropped, or numeric features coarsened into a few bins: a proxy, for example); and, if wanted,
fairlearn reductions (the estimator refitted under a fairness constraint). Its candidates are
every combination, in a fixed order, and the search refuses a space larger than its bound rather
than sample from it silently.

Each trained candidate is a point: its accuracy metric (higher is better, e.g. the validation
AUC) and its fairness (higher is better: the lowest disparate-impact ratio over the groups, at
most 1). A point is on the Pareto frontier when no other point is at least as good on both and
better on one. A candidate is a less discriminatory alternative to the base when it is fairer
than the base and loses no more than the declared accuracy (``max_accuracy_loss``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_CANDIDATES = 200


@dataclass(frozen=True)
class Candidate:
    index: int
    params: dict[str, Any]  # estimator parameters set on top of the base spec's
    dropped: tuple[str, ...]  # features left out
    coarsened: tuple[tuple[str, int], ...] = ()  # numeric features cut into this many bins
    mitigation: dict[str, Any] | None = None  # a reduction: its constraint and eps


@dataclass(frozen=True)
class Point:
    key: str
    accuracy: float
    fairness: float


def grid(
    params: Mapping[str, Sequence[Any]],
    drops: Sequence[Sequence[str]],
    limit: int = MAX_CANDIDATES,
    coarsen: Sequence[Mapping[str, int]] = (),
    reductions: Sequence[Mapping[str, Any]] = (),
) -> list[Candidate]:
    """Every combination of the parameter values, the feature treatments (the features as they
    are first, then each subset to drop, then each set to coarsen) and the reductions (none
    first), in that order; ValueError when there are more than ``limit``."""
    names = sorted(params)
    subsets = list(dict.fromkeys([()] + [tuple(sorted(d)) for d in drops if d]))
    coarsenings = list(dict.fromkeys(tuple(sorted(c.items())) for c in coarsen if c))
    treatments: list[tuple[tuple[str, ...], tuple[tuple[str, int], ...]]] = [
        (d, ()) for d in subsets
    ] + [((), c) for c in coarsenings]
    mitigations: list[dict[str, Any] | None] = [None, *(dict(r) for r in reductions)]
    values = [list(params[name]) for name in names]
    size = len(treatments) * len(mitigations)
    for v in values:
        size *= len(v)
    if size > limit:
        raise ValueError(f"the space has {size} candidates; at most {limit}")
    found = []
    combos = itertools.product(itertools.product(*values), treatments, mitigations)
    for i, (combo, (dropped, coarsened), mitigation) in enumerate(combos):
        found.append(
            Candidate(
                index=i,
                params=dict(zip(names, combo, strict=True)),
                dropped=dropped,
                coarsened=coarsened,
                mitigation=mitigation,
            )
        )
    return found


def _dominates(a: Point, b: Point) -> bool:
    return (
        a.accuracy >= b.accuracy
        and a.fairness >= b.fairness
        and (a.accuracy > b.accuracy or a.fairness > b.fairness)
    )


def pareto(points: Sequence[Point]) -> list[str]:
    """The keys of the points no other point dominates, by accuracy then fairness."""
    ordered = sorted(points, key=lambda p: (-p.accuracy, -p.fairness, p.key))
    frontier: list[Point] = []
    best_fairness = float("-inf")
    for p in ordered:
        if p.fairness > best_fairness:
            frontier.append(p)
            best_fairness = p.fairness
        elif p.fairness == best_fairness and frontier and p.accuracy == frontier[-1].accuracy:
            frontier.append(p)  # the same point twice: neither dominates the other
    return [p.key for p in frontier]


def less_discriminatory(
    base: Point, points: Sequence[Point], max_accuracy_loss: float
) -> list[str]:
    """The candidates fairer than the base that lose at most ``max_accuracy_loss``, fairest
    first."""
    found = [
        p
        for p in points
        if p.key != base.key
        and p.fairness > base.fairness
        and p.accuracy >= base.accuracy - max_accuracy_loss
    ]
    return [p.key for p in sorted(found, key=lambda p: (-p.fairness, -p.accuracy, p.key))]
