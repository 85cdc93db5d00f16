"""Fairness metrics and verdicts from per-group counts. Pure computation: the counting happens
in the database (``explain.fairness.query``), so millions of decisions arrive here as a few rows.

Definitions (the favourable decision is the model's favourable class, e.g. "approve"):

* selection rate: favourable decisions / decisions, with a 95% Wilson score interval;
* true positive rate: favourable decisions among subjects whose outcome was favourable;
  false positive rate: favourable decisions among subjects whose outcome was unfavourable;
* most favoured group (the reference): the highest selection rate among the groups that meet
  the minimum size (a group below it is too uncertain to be the yardstick; when no group meets
  it, the highest rate of all);
* disparate impact ratio: a group's selection rate / the reference's, for EVERY group, small
  ones included (a small group's ratio may exceed 1). Its 95% confidence interval is Katz's log
  method for a ratio of two independent proportions (Katz, Baptista, Azen & Pike 1978):
  ``log r +/- z * sqrt(1/x1 - 1/n1 + 1/x2 - 1/n2)``; when one of the four counts is 0, 0.5 is
  added to each (x + 0.5 of n + 1), the interval is widened to contain the estimate, and a
  ratio of 0 has lower bound 0. The reference's own ratio is 1 by definition (no interval).
  The interval is conditional on the reference chosen;
* demographic parity difference: max - min selection rate; equal opportunity difference:
  max - min TPR; equalized odds difference: the larger of the TPR and FPR differences (the
  definitions fairlearn uses), over every group;
* ``selection_rate_test`` (are the selection rates of all groups equal?): Pearson's
  chi-squared test of homogeneity (no continuity correction) when every expected count is at
  least 5; otherwise an exact test: Fisher's for two groups, and for more a Monte Carlo
  permutation test with the margins fixed (tables drawn by ``scipy.stats.random_table`` from a
  recorded seed; p = (1 + #{simulated statistic >= observed}) / (1 + resamples)).

The verdict of the four-fifths rule (EEOC Uniform Guidelines, 29 CFR 1607.4(D)), one of
``holds``, ``violated``, ``not_assessable``, with ``verdict_reasons`` in plain sentences:

* ``violated``: some group's ratio is below 0.8, the group and the reference both meet the
  minimum size, and its difference from the reference is statistically significant: a 2x2 test
  (chi-squared, or Fisher's exact test when an expected count is below 5) whose p-value is
  Holm-adjusted over every pair of groups meeting the minimum size, below alpha = 0.05. 1607.4(D)
  itself says that greater differences "may not constitute adverse impact where the
  differences are based on small numbers and are not statistically significant". The
  adjustment is over all pairs, not only those against the reference, because the reference
  is picked as the highest rate: the all-pairs family controls the chance of any false alarm
  at alpha when every rate is the same (measured by ``bench/false_alarms_fairness.py``). A
  violation between two groups large enough stands whatever a small group shows.
* ``holds``: every group meets the minimum size and every ratio is at least 0.8. That is the
  rule as written (it is defined on the observed rates); the data then cannot significantly
  show a ratio below 0.8, since none is observed. Requiring in addition that each interval lie
  above 0.8 would turn ``holds`` into an equivalence test that no book of a few hundred
  decisions per group could pass; instead, when an interval reaches below 0.8 a reason says
  how low the ratio could be, and when the rates differ significantly although every ratio is
  at least 0.8, a reason says so (1607.4(D): smaller differences may still be adverse impact).
* ``not_assessable`` otherwise, naming why: a group below the minimum size (its ratio and
  interval are still shown), a ratio below 0.8 that is not statistically significant at this
  sample size, no favourable decision in any group, fewer than two groups.

Each group carries its own ``four_fifths_verdict`` (is this group adversely impacted against
the reference?). The same rule is applied to the true positive rates of the subjects whose
outcome was favourable (``equal_opportunity_verdict``; 0.8 is there the disparity tolerance
that Aequitas uses, a convention rather than a regulation), with the minimum size counted in
such subjects: a group without recorded outcomes makes it ``not_assessable``, named.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

Z95 = 1.959963984540054
FOUR_FIFTHS = 0.8
ALPHA = 0.05
MIN_EXPECTED = 5.0
RESAMPLES = 9_999
DEFAULT_SEED = 0
HOLDS, VIOLATED, NOT_ASSESSABLE = "holds", "violated", "not_assessable"
VERDICTS = (HOLDS, VIOLATED, NOT_ASSESSABLE)


@dataclass(frozen=True)
class GroupCounts:
    key: tuple[str, ...]
    n: int
    selected: int
    with_outcome: int = 0
    actual_favourable: int = 0
    true_positives: int = 0
    false_positives: int = 0


def final_counts(
    automated: list[GroupCounts],
    overturned: list[GroupCounts],
    to_favourable: list[GroupCounts],
) -> list[GroupCounts]:
    """The counts of the final decisions: each decision a person overturned counts with the
    person's label, not the model's. ``overturned`` are the overturned decisions' counts as the
    model decided them, ``to_favourable`` those a person made favourable (with their outcomes);
    every group keeps its decisions and outcomes, only who was selected changes."""
    was = {g.key: g for g in overturned}
    now = {g.key: g for g in to_favourable}
    final = []
    for g in automated:
        o = was.get(g.key, GroupCounts(key=g.key, n=0, selected=0))
        f = now.get(g.key, GroupCounts(key=g.key, n=0, selected=0))
        final.append(
            GroupCounts(
                key=g.key,
                n=g.n,
                selected=g.selected - o.selected + f.n,
                with_outcome=g.with_outcome,
                actual_favourable=g.actual_favourable,
                true_positives=g.true_positives - o.true_positives + f.actual_favourable,
                false_positives=g.false_positives
                - o.false_positives
                + (f.with_outcome - f.actual_favourable),
            )
        )
    return final


@dataclass(frozen=True)
class Rate:
    """One group's count of successes ``k`` among ``n``, named for the reasons."""

    name: str
    n: int
    k: int

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None


@dataclass(frozen=True)
class Wording:
    """How the reasons speak of one comparison."""

    rate: str  # "selection rate"
    unit: str  # "decisions"
    none: str  # why no ratio is defined when nobody succeeded
    significant: str = ""  # what a significant difference with every ratio >= 0.8 may mean


SELECTION = Wording(
    "selection rate",
    "decisions",
    "no favourable decisions in any group: the ratios are undefined",
    "; 29 CFR 1607.4(D): smaller differences may still constitute adverse impact",
)
OPPORTUNITY = Wording(
    "true positive rate",
    "subjects with a favourable outcome",
    "no subject with a favourable outcome got a favourable decision, in any group: the "
    "ratios are undefined",
)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    if n == 0:
        return None
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def ratio_ci(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float] | None:
    """95% interval of (k1/n1) / (k2/n2) by Katz's log method; see the module docstring."""
    if n1 == 0 or n2 == 0 or k2 == 0:
        return None
    estimate = (k1 / n1) / (k2 / n2)
    x1, m1, x2, m2 = float(k1), float(n1), float(k2), float(n2)
    if 0 in (k1, n1 - k1, k2, n2 - k2):
        x1, m1, x2, m2 = x1 + 0.5, m1 + 1, x2 + 0.5, m2 + 1
    centre = (x1 / m1) / (x2 / m2)
    se = math.sqrt(max(0.0, 1 / x1 - 1 / m1 + 1 / x2 - 1 / m2))
    low, high = centre * math.exp(-z * se), centre * math.exp(z * se)
    if k1 == 0:
        low = 0.0
    return min(low, estimate), max(high, estimate)


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


def group_name(key: tuple[str, ...], attributes: list[str]) -> str:
    return ", ".join(f"{a}={v}" for a, v in zip(attributes, key, strict=True))


def _f(value: float) -> str:
    return f"{value:.3g}"


def _ci(interval: tuple[float, float] | list[float] | None) -> str:
    return "" if interval is None else f" (95% CI {_f(interval[0])} to {_f(interval[1])})"


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"


# Tests -----------------------------------------------------------------------------------------


def _min_expected(table: NDArray[np.float64]) -> float:
    total = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    return float(expected.min())


def pair_test(k1: int, n1: int, k2: int, n2: int) -> dict[str, Any]:
    """Two groups' rates compared: Pearson's chi-squared (no continuity correction), or Fisher's
    exact test when an expected count is below 5; p = 1 when nobody, or everybody, succeeded
    (nothing differs)."""
    total, successes = n1 + n2, k1 + k2
    if successes in (0, total):
        return {"test": "none (no variation)", "p_value": 1.0}
    failures = total - successes
    if min(n1, n2) * min(successes, failures) / total < MIN_EXPECTED:
        _odds, p = stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]])
        return {"test": "Fisher's exact test", "p_value": float(p)}
    cross = k1 * (n2 - k2) - k2 * (n1 - k1)
    chi2 = total * cross * cross / (n1 * n2 * successes * failures)
    return {"test": "chi-squared test", "p_value": math.erfc(math.sqrt(chi2 / 2))}


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: reject H_i at alpha iff its adjusted p-value < alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _pearson(tables: NDArray[np.float64], expected: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(((tables - expected) ** 2 / expected).sum(axis=(-2, -1)))


def homogeneity(rates: list[Rate], seed: int, resamples: int) -> dict[str, Any] | None:
    """Are the rates of every group equal? See the module docstring for the test chosen."""
    groups = [r for r in rates if r.n]
    total = sum(r.n for r in groups)
    successes = sum(r.k for r in groups)
    if len(groups) < 2 or successes in (0, total):
        return None
    table = np.array([[r.k, r.n - r.k] for r in groups], dtype=float)
    if _min_expected(table) >= MIN_EXPECTED:
        chi2, p, dof, _e = stats.chi2_contingency(table, correction=False)
        return {
            "test": "Pearson chi-squared test of homogeneity (no continuity correction)",
            "statistic": float(chi2),
            "dof": int(dof),
            "p_value": float(p),
            "min_expected_count": _min_expected(table),
        }
    if len(groups) == 2:
        _odds, p = stats.fisher_exact(table.astype(int))
        return {
            "test": "Fisher's exact test (two groups, an expected count below 5)",
            "p_value": float(p),
            "min_expected_count": _min_expected(table),
        }
    rows, columns = table.sum(axis=1), table.sum(axis=0)
    expected = np.outer(rows, columns) / total
    observed = float(_pearson(table, expected))
    distribution = stats.random_table(rows.astype(int), columns.astype(int))
    rng = np.random.default_rng(seed)
    exceed, done = 0, 0
    while done < resamples:
        size = min(2_000, resamples - done)
        simulated = _pearson(distribution.rvs(size=size, random_state=rng), expected)
        exceed += int(np.count_nonzero(simulated >= observed * (1 - 1e-9)))
        done += size
    return {
        "test": "Monte Carlo permutation test of homogeneity (margins fixed, Pearson "
        "statistic; an expected count below 5)",
        "statistic": observed,
        "dof": len(groups) - 1,
        "p_value": (1 + exceed) / (1 + resamples),
        "min_expected_count": _min_expected(table),
        "seed": seed,
        "resamples": resamples,
    }


# The verdict -----------------------------------------------------------------------------------


def _reference(rates: list[Rate], min_size: int) -> int | None:
    """The most favoured group: the highest rate among groups meeting the minimum size (the
    larger group on a tie), else among all; None when no group has a positive rate."""
    present = [i for i, r in enumerate(rates) if r.n]
    large = [i for i in present if rates[i].n >= min_size]
    for pool in (large, present):
        if pool:
            best = max(pool, key=lambda i: (rates[i].k / rates[i].n, rates[i].n, -i))
            if rates[best].k:
                return best
    return None


def assess(
    rates: list[Rate],
    min_size: int,
    wording: Wording,
    alpha: float = ALPHA,
    empty: dict[int, str] | None = None,
) -> dict[str, Any]:
    """Ratios to the most favoured group, their intervals and tests, each group's verdict and
    the overall verdict with its reasons (module docstring). ``empty`` words the reason for a
    group with nothing counted (n = 0), by its index."""
    reference = _reference(rates, min_size)
    large = [i for i, r in enumerate(rates) if r.n >= min_size]
    # Every pair of groups meeting the minimum size, Holm-adjusted together.
    pairs = list(itertools.combinations(large, 2))
    tests = [pair_test(rates[i].k, rates[i].n, rates[j].k, rates[j].n) for i, j in pairs]
    adjusted = holm([t["p_value"] for t in tests])
    by_pair = {
        frozenset(pair): {**test, "p_value_holm": p, "pairs_adjusted_over": len(pairs)}
        for pair, test, p in zip(pairs, tests, adjusted, strict=True)
    }
    ref = rates[reference] if reference is not None else None
    ref_index = -1 if reference is None else reference
    per_group: list[dict[str, Any]] = []
    for i, rate in enumerate(rates):
        entry: dict[str, Any] = {
            "below_minimum_size": rate.n < min_size,
            "ratio": None,
            "ratio_ci95": None,
            "test_vs_most_favoured": None,
            "verdict": NOT_ASSESSABLE,
        }
        if ref is not None and rate.n:
            entry["ratio"] = 1.0 if i == reference else (rate.k / rate.n) / (ref.k / ref.n)
            if i != reference:
                interval = ratio_ci(rate.k, rate.n, ref.k, ref.n)
                entry["ratio_ci95"] = list(interval) if interval else None
                test = by_pair.get(frozenset((i, ref_index)))
                entry["test_vs_most_favoured"] = test or {
                    **pair_test(rate.k, rate.n, ref.k, ref.n),
                    "p_value_holm": None,
                    "pairs_adjusted_over": 0,
                }
            both_large = rate.n >= min_size and ref.n >= min_size
            if both_large and entry["ratio"] >= FOUR_FIFTHS:
                entry["verdict"] = HOLDS
            elif both_large and entry["test_vs_most_favoured"]["p_value_holm"] < alpha:
                entry["verdict"] = VIOLATED
        per_group.append(entry)
    verdict, reasons = _overall(
        rates, per_group, reference, min_size, wording, alpha, by_pair, empty or {}
    )
    ratios = [(e["ratio"], i) for i, e in enumerate(per_group) if e["ratio"] is not None]
    lowest = min(ratios)[1] if ratios else None
    return {
        "groups": per_group,
        "reference": reference,
        "lowest": lowest,
        "verdict": verdict,
        "reasons": reasons,
    }


def _overall(
    rates: list[Rate],
    per_group: list[dict[str, Any]],
    reference: int | None,
    min_size: int,
    wording: Wording,
    alpha: float,
    by_pair: dict[frozenset[int], dict[str, Any]],
    empty: dict[int, str],
) -> tuple[str, list[str]]:
    """The verdict over all groups, with its reasons: violated, holds, or not assessable."""
    if not any(r.n for r in rates):
        return NOT_ASSESSABLE, [f"no {wording.unit}: nothing to assess"]
    if len(rates) < 2:
        return NOT_ASSESSABLE, [f"only one group ({rates[0].name}): nothing to compare"]
    small = _too_small(rates, per_group, min_size, wording, empty)
    if reference is None:
        return NOT_ASSESSABLE, [wording.none, *small]
    ref = rates[reference]
    if ref.n < min_size:
        small.insert(
            0,
            f"the only groups with a positive {wording.rate} are below the minimum size "
            f"(the most favoured: group {ref.name}): no ratio can be assessed",
        )
    rows = list(zip(rates, per_group, strict=True))
    violated = [_violated(r, e, ref, wording) for r, e in rows if e["verdict"] == VIOLATED]
    unsure = [
        _unsure(r, e, alpha)
        for r, e in rows
        if e["verdict"] == NOT_ASSESSABLE
        and not e["below_minimum_size"]
        and e["ratio"] is not None
        and e["ratio"] < FOUR_FIFTHS
        and ref.n >= min_size
    ]
    if violated:
        notes = [f"{s}; not assessed" for s in small]
        return VIOLATED, [*violated, *unsure, *notes]
    if small or unsure:
        return NOT_ASSESSABLE, [*small, *unsure]
    return HOLDS, _holds(rates, per_group, reference, min_size, wording, alpha, by_pair)


def _too_small(
    rates: list[Rate],
    per_group: list[dict[str, Any]],
    min_size: int,
    wording: Wording,
    empty: dict[int, str],
) -> list[str]:
    """One sentence per group below the minimum size: it cannot support a verdict."""
    return [
        (
            empty.get(i, f"group {r.name} has no {wording.unit}")
            if r.n == 0
            else f"group {r.name} has {r.n} {wording.unit}, below the minimum of {min_size}"
        )
        + (
            f": its ratio {_f(e['ratio'])}{_ci(e['ratio_ci95'])} cannot support a verdict"
            if e["ratio"] is not None and e["ratio_ci95"] is not None
            else ""
        )
        for i, (r, e) in enumerate(zip(rates, per_group, strict=True))
        if r.n < min_size
    ]


def _violated(r: Rate, e: dict[str, Any], ref: Rate, wording: Wording) -> str:
    test = e["test_vs_most_favoured"]
    return (
        f"group {r.name}'s {wording.rate} is {_f(e['ratio'])} of group {ref.name}'s"
        f"{_ci(e['ratio_ci95'])}, below {FOUR_FIFTHS}, and the difference is statistically "
        f"significant ({test['test']}, p = {_p(test['p_value'])}" + _holm_note(test) + ")"
    )


def _unsure(r: Rate, e: dict[str, Any], alpha: float) -> str:
    test = e["test_vs_most_favoured"]
    return (
        f"group {r.name}'s ratio {_f(e['ratio'])}{_ci(e['ratio_ci95'])} is below "
        f"{FOUR_FIFTHS} but not statistically significant at this sample size (p = "
        f"{_p(test['p_value'])}" + _holm_note(test) + f", alpha {alpha})"
    )


def _holds(
    rates: list[Rate],
    per_group: list[dict[str, Any]],
    reference: int,
    min_size: int,
    wording: Wording,
    alpha: float,
    by_pair: dict[frozenset[int], dict[str, Any]],
) -> list[str]:
    """Why the four-fifths rule holds, and what still keeps it from being certain."""
    ref = rates[reference]
    lowest = min(
        (e["ratio"], i)
        for i, e in enumerate(per_group)
        if i != reference and e["ratio"] is not None
    )
    low = per_group[lowest[1]]
    reasons = [
        f"every group has at least {min_size} {wording.unit} and every ratio is at least "
        f"{FOUR_FIFTHS} (lowest: group {rates[lowest[1]].name}, {_f(lowest[0])}"
        f"{_ci(low['ratio_ci95'])}, against group {ref.name})"
    ]
    loose = [
        f"group {r.name}'s ratio could be as low as {_f(e['ratio_ci95'][0])} (95% CI): more "
        f"{wording.unit} are needed to rule out a ratio below {FOUR_FIFTHS}"
        for r, e in zip(rates, per_group, strict=True)
        if e["ratio_ci95"] is not None and e["ratio_ci95"][0] < FOUR_FIFTHS
    ]
    significant = [t for t in by_pair.values() if t["p_value_holm"] < alpha]
    if significant:
        loose.append(
            f"the {wording.rate}s nonetheless differ significantly between some groups "
            f"(smallest Holm-adjusted p = {_p(min(t['p_value_holm'] for t in significant))})"
            + wording.significant
        )
    return reasons + loose


def _holm_note(test: dict[str, Any]) -> str:
    over = test.get("pairs_adjusted_over", 1)
    if over <= 1:
        return ""
    return f", Holm-adjusted over {over} pairs: {_p(test['p_value_holm'])}"


def _violation(verdict: str) -> bool | None:
    """The old boolean, kept truthful: True when violated, False when it holds, else None."""
    return {VIOLATED: True, HOLDS: False}.get(verdict)


# The comparison --------------------------------------------------------------------------------


def group_entry(counts: GroupCounts, attributes: list[str], min_size: int) -> dict[str, Any]:
    negatives = counts.with_outcome - counts.actual_favourable
    interval = wilson(counts.selected, counts.n)
    tpr_interval = wilson(counts.true_positives, counts.actual_favourable)
    entry: dict[str, Any] = {
        "group": dict(zip(attributes, counts.key, strict=True)),
        "n": counts.n,
        "below_minimum_size": counts.n < min_size,
        "too_small": counts.n < min_size,
        "favourable": counts.selected,
        "selection_rate": _rate(counts.selected, counts.n),
        "selection_rate_ci95": list(interval) if interval else None,
        "outcomes": None,
    }
    if counts.with_outcome:
        entry["outcomes"] = {
            "n": counts.with_outcome,
            "favourable_outcomes": counts.actual_favourable,
            "unfavourable_outcomes": negatives,
            "true_positives": counts.true_positives,
            "false_positives": counts.false_positives,
            "true_positive_rate": _rate(counts.true_positives, counts.actual_favourable),
            "true_positive_rate_ci95": list(tpr_interval) if tpr_interval else None,
            "false_positive_rate": _rate(counts.false_positives, negatives),
        }
    return entry


def _spread(values: list[float]) -> float | None:
    return max(values) - min(values) if len(values) >= 2 else None


def significance(
    groups: list[GroupCounts], seed: int = DEFAULT_SEED, resamples: int = RESAMPLES
) -> dict[str, Any] | None:
    """The test of equal selection rates across every group (module docstring)."""
    return homogeneity([Rate("", g.n, g.selected) for g in groups], seed, resamples)


def _opportunity(
    groups: list[GroupCounts], names: list[str], min_size: int, alpha: float
) -> dict[str, Any]:
    """The equal-opportunity verdict: the four-fifths logic on true positive rates."""
    rates = [
        Rate(name, g.actual_favourable, g.true_positives)
        for g, name in zip(groups, names, strict=True)
    ]
    empty = {
        i: f"group {name} has no recorded outcomes"
        if g.with_outcome == 0
        else f"group {name} has no recorded favourable outcome: its true positive rate is undefined"
        for i, (g, name) in enumerate(zip(groups, names, strict=True))
    }
    result = assess(rates, min_size, OPPORTUNITY, alpha, empty)
    if not any(g.with_outcome for g in groups):
        result["reasons"] = ["no outcomes recorded for any group"]
    return result


def compare(
    groups: list[GroupCounts],
    attributes: list[str],
    min_size: int,
    *,
    alpha: float = ALPHA,
    seed: int = DEFAULT_SEED,
    resamples: int = RESAMPLES,
) -> dict[str, Any]:
    """Per-group entries, the cross-group metrics over EVERY group (small ones are marked, never
    left out), and the verdicts with their reasons."""
    entries = [group_entry(g, attributes, min_size) for g in groups]
    names = [group_name(g.key, attributes) for g in groups]
    selection = assess(
        [Rate(name, g.n, g.selected) for g, name in zip(groups, names, strict=True)],
        min_size,
        SELECTION,
        alpha,
    )
    opportunity = _opportunity(groups, names, min_size, alpha)
    for entry, assessed, eo in zip(
        entries, selection["groups"], opportunity["groups"], strict=True
    ):
        entry["disparate_impact_ratio"] = assessed["ratio"]
        entry["disparate_impact_ratio_ci95"] = assessed["ratio_ci95"]
        entry["test_vs_most_favoured"] = assessed["test_vs_most_favoured"]
        entry["four_fifths_verdict"] = assessed["verdict"]
        entry["four_fifths_violation"] = _violation(assessed["verdict"])
        if entry["outcomes"] is not None:
            entry["outcomes"]["true_positive_rate_ratio"] = eo["ratio"]
            entry["outcomes"]["true_positive_rate_ratio_ci95"] = eo["ratio_ci95"]
            entry["outcomes"]["equal_opportunity_verdict"] = eo["verdict"]
    rates = [g.selected / g.n for g in groups if g.n]
    tprs = [g.true_positives / g.actual_favourable for g in groups if g.actual_favourable]
    negatives = [g.with_outcome - g.actual_favourable for g in groups]
    fprs = [g.false_positives / m for g, m in zip(groups, negatives, strict=True) if m]
    tpr_spread, fpr_spread = _spread(tprs), _spread(fprs)
    reference, lowest = selection["reference"], selection["lowest"]
    verdict = selection["verdict"]
    return {
        "groups": entries,
        "compared_groups": sum(g.n >= min_size for g in groups),
        "too_small_groups": sum(g.n < min_size for g in groups),
        "most_favoured_group": entries[reference]["group"] if reference is not None else None,
        "least_favoured_group": entries[lowest]["group"] if lowest is not None else None,
        "disparate_impact_ratio_min": entries[lowest]["disparate_impact_ratio"]
        if lowest is not None
        else None,
        "disparate_impact_ratio_min_ci95": entries[lowest]["disparate_impact_ratio_ci95"]
        if lowest is not None
        else None,
        "four_fifths_verdict": verdict,
        "verdict_reasons": selection["reasons"],
        "four_fifths_violation": _violation(verdict),
        "equal_opportunity_verdict": opportunity["verdict"],
        "equal_opportunity_verdict_reasons": opportunity["reasons"],
        "demographic_parity_difference": _spread(rates),
        "equal_opportunity_difference": tpr_spread if len(tprs) == len(groups) else None,
        "equalized_odds_difference": max(tpr_spread, fpr_spread)
        if tpr_spread is not None
        and fpr_spread is not None
        and len(tprs) == len(fprs) == len(groups)
        else None,
        "selection_rate_test": significance(groups, seed, resamples),
    }


def verdict_rule(min_size: int, alpha: float = ALPHA) -> dict[str, Any]:
    """The rule the verdicts follow, stated in the report."""
    return {
        "ratio_threshold": FOUR_FIFTHS,
        "alpha": alpha,
        "min_group_size": min_size,
        "violated": f"a group's ratio to the most favoured group is below {FOUR_FIFTHS}, both "
        f"have at least {min_size} decisions, and their difference is significant (2x2 "
        "chi-squared, or Fisher's exact test when an expected count is below 5; p "
        f"Holm-adjusted over every pair of groups meeting the minimum) at {alpha}",
        "holds": f"every group has at least {min_size} decisions and every ratio is at least "
        f"{FOUR_FIFTHS}",
        "not_assessable": "otherwise; the reasons say which group is too small, which ratio "
        "is not significant, or why no ratio is defined",
        "ratio_ci95": "Katz log method (0.5 added to each count when one is 0)",
    }
