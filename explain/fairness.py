"""Fairness metrics from per-group counts. Pure computation: the counting happens in the
database (``explain.fairness_query``), so millions of decisions arrive here as a few rows.

Definitions (the favourable decision is the model's favourable class, e.g. "approve"):

* selection rate: favourable decisions / decisions, with a 95% Wilson score interval;
* true positive rate: favourable decisions among subjects whose outcome was favourable;
  false positive rate: favourable decisions among subjects whose outcome was unfavourable;
* disparate impact ratio: a group's selection rate / the most favoured group's; below 0.8
  violates the four-fifths rule (EEOC Uniform Guidelines, 29 CFR 1607.4(D));
* demographic parity difference: max - min selection rate; equal opportunity difference:
  max - min TPR; equalized odds difference: the larger of the TPR and FPR differences (the
  definitions fairlearn uses);
* significance: Pearson's chi-squared test of homogeneity of selection rates across the groups
  (``scipy.stats.chi2_contingency``, no continuity correction); for two groups with an expected
  cell below 5, Fisher's exact test instead.

Groups below the minimum size are reported as too small and left out of every comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy import stats

Z95 = 1.959963984540054
FOUR_FIFTHS = 0.8


@dataclass(frozen=True)
class GroupCounts:
    key: tuple[str, ...]
    n: int
    selected: int
    with_outcome: int = 0
    actual_favourable: int = 0
    true_positives: int = 0
    false_positives: int = 0


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    if n == 0:
        return None
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


def group_entry(counts: GroupCounts, attributes: list[str], min_size: int) -> dict[str, Any]:
    negatives = counts.with_outcome - counts.actual_favourable
    interval = wilson(counts.selected, counts.n)
    entry: dict[str, Any] = {
        "group": dict(zip(attributes, counts.key, strict=True)),
        "n": counts.n,
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
            "false_positive_rate": _rate(counts.false_positives, negatives),
        }
    return entry


def _spread(values: list[float]) -> float | None:
    return max(values) - min(values) if len(values) >= 2 else None


def significance(groups: list[GroupCounts]) -> dict[str, Any] | None:
    table = [[g.selected, g.n - g.selected] for g in groups]
    if len(table) < 2 or sum(row[0] for row in table) in (0, sum(g.n for g in groups)):
        return None
    if len(table) == 2:
        total = sum(g.n for g in groups)
        selected = sum(row[0] for row in table)
        expected = [g.n * s / total for g in groups for s in (selected, total - selected)]
        if min(expected) < 5:
            _odds, p_value = stats.fisher_exact(table)
            return {
                "test": "Fisher's exact test (two groups, small expected counts)",
                "p_value": float(p_value),
            }
    chi2, p_value, dof, _expected = stats.chi2_contingency(table, correction=False)
    return {
        "test": "Pearson chi-squared test of homogeneity of selection rates (no continuity correction)",
        "statistic": float(chi2),
        "dof": int(dof),
        "p_value": float(p_value),
    }


def compare(groups: list[GroupCounts], attributes: list[str], min_size: int) -> dict[str, Any]:
    """Per-group entries and the cross-group metrics over the groups large enough to compare."""
    entries = [group_entry(g, attributes, min_size) for g in groups]
    usable = [g for g in groups if g.n >= min_size]
    rates = {g.key: g.selected / g.n for g in usable}
    best = max(rates.values()) if rates else None
    for entry, counts in zip(entries, groups, strict=True):
        if counts.key in rates and best:
            ratio = rates[counts.key] / best
            entry["disparate_impact_ratio"] = ratio
            entry["four_fifths_violation"] = ratio < FOUR_FIFTHS
        else:
            entry["disparate_impact_ratio"] = None
            entry["four_fifths_violation"] = None
    tprs = [g.true_positives / g.actual_favourable for g in usable if g.actual_favourable]
    fprs = [
        g.false_positives / (g.with_outcome - g.actual_favourable)
        for g in usable
        if g.with_outcome - g.actual_favourable
    ]
    tpr_spread, fpr_spread = _spread(tprs), _spread(fprs)
    most_favoured = [
        dict(zip(attributes, key, strict=True)) for key, rate in rates.items() if rate == best
    ]
    ratios = [rate / best for rate in rates.values()] if best else []
    return {
        "groups": entries,
        "compared_groups": len(usable),
        "too_small_groups": len(groups) - len(usable),
        "most_favoured_group": most_favoured[0] if most_favoured else None,
        "disparate_impact_ratio_min": min(ratios) if ratios else None,
        "four_fifths_violation": any(r < FOUR_FIFTHS for r in ratios) if ratios else None,
        "demographic_parity_difference": _spread(list(rates.values())),
        "equal_opportunity_difference": tpr_spread if len(tprs) == len(usable) else None,
        "equalized_odds_difference": max(tpr_spread, fpr_spread)
        if tpr_spread is not None
        and fpr_spread is not None
        and len(tprs) == len(fprs) == len(usable)
        else None,
        "selection_rate_test": significance(usable),
    }
