"""Champion against challenger: the statistics of an experiment. Pure computation; the counting
happens in the database (``governance.experiments.query``), so an arm of a million decisions
arrives here as a few sums.

**The estimate.** Each arm's metric is a mean with a variance: a proportion (approval rate;
default rate among the approved, from outcomes) with ``p(1 - p) / n``; an expected loss per
decision with the sample variance of the cost over ``n``; an AUC with the Hanley & McNeil (1982)
variance. The difference ``d = challenger - champion`` has variance ``s2 = v_challenger +
v_champion`` (two arms of different applicants: a canary). A shadow scores the champion's own
applicants, so for a proportion the difference is paired: ``s2 = (b + c - (b - c)^2 / n) / n^2``
from the discordant counts ``b`` and ``c`` (McNemar's variance).

**Stopping rules.**

* ``fixed_horizon``: nothing is concluded before each arm has the planned sample
  (``planned_per_arm``: the two-sided z-test's ``n = (z_{1-alpha/2} + z_{power})^2 * 2 p (1 - p)
  / mde^2`` for a proportion with baseline ``p``); then one two-sided z-test at ``alpha``.
  Looking earlier and stopping would inflate the error: the report says ``continue``.
* ``msprt``: the mixture sequential probability ratio test (Robbins 1970; Johari, Koomen,
  Pekelis & Walsh, "Always valid inference", 2017/2022) on the normal approximation of ``d``:
  with a normal mixing distribution ``N(0, tau^2)`` over the true difference,

      Lambda = sqrt(s2 / (s2 + tau2)) * exp(d^2 * tau2 / (2 * s2 * (s2 + tau2)))

  is a test martingale under no difference, so by Ville's inequality the chance that it ever
  reaches ``1 / alpha`` is at most ``alpha``: the report may be read after every decision and
  stop the first time it does. ``tau = mde`` (the mixing scale is the effect the experiment is
  sized to find). The always-valid p-value is ``min(1, 1 / Lambda)``; its confidence sequence
  is the set of differences whose own ratio stays below ``1 / alpha``:
  ``d +/- sqrt(s2 (s2 + tau2) / tau2 * (2 log(1/alpha) + log((s2 + tau2) / s2)))``. An
  experiment with no decision at its ``max_per_arm`` horizon ends as ``no_difference``.

The decision is ``continue``, ``challenger_better``, ``champion_better`` or ``no_difference``,
with "better" read in the metric's direction (a higher approval rate or AUC; a lower default
rate or expected loss). No verdict is given from arms below ``MIN_PER_ARM`` decisions with the
metric: the normal approximation does not hold there, and the report says so.

**Sample ratio mismatch.** The arms' counts against the weights they were given: Pearson's
chi-squared goodness of fit; ``p < 0.001`` (the threshold the literature on online experiments
uses, Fabijan et al. 2019) marks the split as broken, and no decision stands on a broken split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from scipy import stats

Direction = Literal["higher", "lower"]
CONTINUE, CHALLENGER, CHAMPION, NO_DIFFERENCE = (
    "continue",
    "challenger_better",
    "champion_better",
    "no_difference",
)
MIN_PER_ARM = 30
SRM_ALPHA = 0.001


@dataclass(frozen=True)
class Estimate:
    """One arm's metric: its value, the variance of that value, and the decisions it is from."""

    value: float | None
    variance: float | None
    n: int

    def interval(self, alpha: float = 0.05) -> tuple[float, float] | None:
        if self.value is None or self.variance is None:
            return None
        half = stats.norm.ppf(1 - alpha / 2) * math.sqrt(self.variance)
        return (self.value - half, self.value + half)


def proportion(k: int, n: int) -> Estimate:
    if n == 0:
        return Estimate(None, None, 0)
    p = k / n
    return Estimate(p, p * (1 - p) / n, n)


def mean_of(total: float, squares: float, n: int) -> Estimate:
    """A mean from its sum and sum of squares, with the sample variance of the mean."""
    if n == 0:
        return Estimate(None, None, 0)
    mean = total / n
    if n == 1:
        return Estimate(mean, None, 1)
    variance = max(squares - n * mean * mean, 0.0) / (n - 1)
    return Estimate(mean, variance / n, n)


def auc_from_bins(positives: list[int], negatives: list[int]) -> Estimate:
    """The AUC of scores given as counts per ordered score bin (lowest first), positives and
    negatives; ties within a bin count half. Hanley & McNeil's variance."""
    n_pos, n_neg = sum(positives), sum(negatives)
    if n_pos == 0 or n_neg == 0:
        return Estimate(None, None, n_pos + n_neg)
    below = 0
    wins = 0.0
    for pos, neg in zip(positives, negatives, strict=True):
        wins += pos * (below + neg / 2)
        below += neg
    auc = wins / (n_pos * n_neg)
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)
    ) / (n_pos * n_neg)
    return Estimate(auc, max(variance, 0.0), n_pos + n_neg)


def paired_proportion_variance(only_challenger: int, only_champion: int, n: int) -> float:
    """The variance of the difference of two proportions measured on the same ``n`` subjects,
    from the discordant counts (McNemar)."""
    b, c = only_challenger, only_champion
    return max(b + c - (b - c) ** 2 / n, 0.0) / (n * n) if n else math.inf


def planned_per_arm(baseline: float, mde: float, alpha: float, power: float) -> int:
    """The fixed horizon's sample per arm for a proportion near ``baseline``."""
    p = min(max(baseline, 1e-6), 1 - 1e-6)
    z = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    return math.ceil(z * z * 2 * p * (1 - p) / (mde * mde))


def msprt(difference: float, variance: float, tau: float) -> float:
    """The mixture likelihood ratio of a difference with this variance, mixing over N(0, tau^2)."""
    tau2 = tau * tau
    total = variance + tau2
    log_ratio = 0.5 * math.log(variance / total) + difference * difference * tau2 / (
        2 * variance * total
    )
    return math.exp(min(log_ratio, 700.0))


def msprt_boundary(variance: float, tau: float, alpha: float) -> float:
    """The smallest |difference| at which the mixture ratio reaches 1 / alpha."""
    tau2 = tau * tau
    total = variance + tau2
    return math.sqrt(
        variance * total / tau2 * (2 * math.log(1 / alpha) + math.log(total / variance))
    )


def _better(difference: float, direction: Direction) -> str:
    return CHALLENGER if (difference > 0) == (direction == "higher") else CHAMPION


@dataclass(frozen=True)
class Rule:
    kind: Literal["fixed_horizon", "msprt"]
    alpha: float
    mde: float
    direction: Direction
    per_arm: int  # the fixed horizon's planned sample, or the sequential test's last look


def compare(
    champion: Estimate, challenger: Estimate, rule: Rule, variance: float | None = None
) -> dict[str, Any]:
    """The test of one challenger against the champion under the stopping rule; ``variance``
    overrides the difference's variance (a paired shadow)."""
    smallest = min(champion.n, challenger.n)
    base: dict[str, Any] = {
        "difference": None,
        "interval": None,
        "statistic": None,
        "p_value": None,
    }
    if champion.value is None or challenger.value is None:
        return {
            **base,
            "decision": CONTINUE,
            "reason": "an arm has no decision with this metric yet",
        }
    difference = challenger.value - champion.value
    if variance is None:
        variance = (champion.variance or 0.0) + (challenger.variance or 0.0)
    base["difference"] = difference
    at_horizon = smallest >= rule.per_arm
    if smallest < MIN_PER_ARM:
        return {
            **base,
            "decision": CONTINUE,
            "reason": f"each arm needs {MIN_PER_ARM} decisions with this metric before any "
            f"verdict; the smaller has {smallest}",
        }
    if variance <= 0:
        if at_horizon:
            return {**base, "decision": NO_DIFFERENCE, "reason": "no variation in either arm"}
        return {**base, "decision": CONTINUE, "reason": "no variation in either arm yet"}
    if rule.kind == "fixed_horizon":
        z = difference / math.sqrt(variance)
        p = float(2 * stats.norm.sf(abs(z)))
        half = stats.norm.ppf(1 - rule.alpha / 2) * math.sqrt(variance)
        base.update(statistic=z, p_value=p, interval=(difference - half, difference + half))
        if not at_horizon:
            return {
                **base,
                "decision": CONTINUE,
                "reason": f"a fixed-horizon test decides at {rule.per_arm} per arm; the smaller "
                f"arm has {smallest} (stopping on an earlier look would inflate the error)",
            }
        if p < rule.alpha:
            return {
                **base,
                "decision": _better(difference, rule.direction),
                "reason": f"z = {z:.3g}, p = {p:.3g} < {rule.alpha}",
            }
        return {
            **base,
            "decision": NO_DIFFERENCE,
            "reason": f"z = {z:.3g}, p = {p:.3g}: not below {rule.alpha} at the horizon",
        }
    ratio = msprt(difference, variance, rule.mde)
    half = msprt_boundary(variance, rule.mde, rule.alpha)
    p = min(1.0, 1.0 / ratio)
    base.update(statistic=ratio, p_value=p, interval=(difference - half, difference + half))
    if ratio >= 1 / rule.alpha:
        return {
            **base,
            "decision": _better(difference, rule.direction),
            "reason": f"the mixture likelihood ratio {ratio:.3g} reached 1/alpha = "
            f"{1 / rule.alpha:.3g} (always-valid p = {p:.3g})",
        }
    if at_horizon:
        return {
            **base,
            "decision": NO_DIFFERENCE,
            "reason": f"the last look ({rule.per_arm} per arm) came and the ratio {ratio:.3g} "
            f"stayed below {1 / rule.alpha:.3g}",
        }
    return {
        **base,
        "decision": CONTINUE,
        "reason": f"the mixture likelihood ratio is {ratio:.3g}, below 1/alpha = "
        f"{1 / rule.alpha:.3g}; safe to look again",
    }


def sample_ratio(counts: Sequence[int], weights: Sequence[float]) -> dict[str, Any]:
    """Do the arms' counts match the weights they were given? Pearson's goodness of fit."""
    total = sum(counts)
    if total == 0 or len(counts) < 2:
        return {"statistic": None, "p_value": None, "mismatch": None, "expected_share": None}
    share = [w / sum(weights) for w in weights]
    expected = [total * s for s in share]
    statistic = sum((o - e) ** 2 / e for o, e in zip(counts, expected, strict=True))
    p = float(stats.chi2.sf(statistic, len(counts) - 1))
    return {
        "statistic": statistic,
        "p_value": p,
        "mismatch": p < SRM_ALPHA,
        "expected_share": share,
        "observed_share": [c / total for c in counts],
    }


def quantile_ranks(n: int, q: float = 0.99, level: float = 0.95) -> tuple[int, int, int] | None:
    """The 1-based ranks of the order statistics that estimate the ``q`` quantile of ``n``
    values and bound it with at least ``level`` confidence, distribution-free (the binomial
    interval for a quantile): (lower, estimate, upper); None when ``n`` is too small for the
    interval to lie within the sample."""
    if n < 1:
        return None
    tail = (1 - level) / 2
    lower = int(stats.binom.ppf(tail, n, q))
    upper = int(stats.binom.ppf(1 - tail, n, q)) + 1
    if lower < 1 or upper > n:
        return None
    return lower, max(1, math.ceil(q * n)), upper
