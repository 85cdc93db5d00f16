"""Small cells: no group figure about a few people reaches a role that may not see protected
attributes.

A cell is one group's row in a table of group figures: its count and every rate computed from
it. Pure functions over plain dicts, so that every place that shows group figures (the model
card, the lineage document, fairness reports) applies the same rule:

* for compliance and admin, every cell stays, and each one is marked
  ``below_reporting_threshold`` when it counts fewer people than the threshold;
* for every other role, the cells below the minimum are withheld. Their names go too: with one
  decision on an endpoint, a withheld row named ``F`` and another named ``[29, 30)`` would
  still tell that person's sex and age. All the small cells of one table become one marked row
  with no name and no figures, so not even how many small groups there are shows. Comparisons
  across groups that used a withheld cell are withheld with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.auth.models import Role

FULL_FIGURES = frozenset({Role.admin, Role.compliance})
MARK = "below_reporting_threshold"
# Cross-group figures of a fairness comparison: each is computed from the compared groups' cells
# (every group is compared, however small), and the verdicts' reasons name groups.
COMPARISON_FIELDS = (
    "compared_groups",
    "most_favoured_group",
    "least_favoured_group",
    "disparate_impact_ratio_min",
    "disparate_impact_ratio_min_ci95",
    "four_fifths_verdict",
    "verdict_reasons",
    "four_fifths_violation",
    "equal_opportunity_verdict",
    "equal_opportunity_verdict_reasons",
    "demographic_parity_difference",
    "equal_opportunity_difference",
    "equalized_odds_difference",
    "selection_rate_test",
)
# A shown group's figures that are relative to other groups.
GROUP_COMPARISON_FIELDS = (
    "disparate_impact_ratio",
    "disparate_impact_ratio_ci95",
    "test_vs_most_favoured",
    "four_fifths_verdict",
    "four_fifths_violation",
)
OUTCOME_COMPARISON_FIELDS = (
    "true_positive_rate_ratio",
    "true_positive_rate_ratio_ci95",
    "equal_opportunity_verdict",
)


def sees_every_cell(role: Role) -> bool:
    return role in FULL_FIGURES


def reason(min_size: int, unit: str = "decisions") -> str:
    return f"fewer than {min_size} {unit}"


def is_small(entry: Mapping[str, Any], min_size: int) -> bool:
    """A cell without a count is treated as small: nothing shows that it is not."""
    n = entry.get("n")
    return not isinstance(n, int) or n < min_size


def withheld_row(template: Mapping[str, Any], min_size: int, unit: str) -> dict[str, Any]:
    """One row standing for every withheld cell of a table: the row's fields, all null."""
    row: dict[str, Any] = dict.fromkeys(template)
    if MARK in template:
        row[MARK] = True
    row.update(suppressed=True, reason=reason(min_size, unit))
    return row


def _outcomes_cell(entry: dict[str, Any], min_size: int) -> dict[str, Any]:
    """A group large enough to show may hold few decisions with a recorded outcome: those
    figures are a cell of their own."""
    outcomes = entry.get("outcomes")
    if isinstance(outcomes, Mapping) and is_small(outcomes, min_size):
        entry = {
            **entry,
            "outcomes": withheld_row(outcomes, min_size, "decisions with an outcome"),
        }
    return entry


def suppress_group_list(
    groups: list[dict[str, Any]], min_size: int, unit: str = "decisions"
) -> list[dict[str, Any]]:
    """``[{"group": ..., "n": ...}, ...]`` (a fairness report's groups): the cells at or above
    the minimum as they are, then one withheld row if any cell was smaller."""
    shown = [_outcomes_cell(g, min_size) for g in groups if not is_small(g, min_size)]
    small = [g for g in groups if is_small(g, min_size)]
    if small:
        shown.append(withheld_row(small[0], min_size, unit))
    return shown


def withheld_key(table: Mapping[str, Any]) -> str:
    """The key of the withheld row in a table keyed by group name, never a shown group's name."""
    key = "(suppressed)"
    while key in table:
        key += "*"
    return key


def suppress_group_table(
    table: Mapping[str, dict[str, Any]], min_size: int, unit: str = "decisions"
) -> dict[str, dict[str, Any]]:
    """``{group name: {"n": ..., rates...}}`` (metrics by group for one attribute)."""
    shown = {name: entry for name, entry in table.items() if not is_small(entry, min_size)}
    small = [entry for entry in table.values() if is_small(entry, min_size)]
    if small:
        shown[withheld_key(shown)] = withheld_row(small[0], min_size, unit)
    return shown


def suppress_metrics_by_group(
    by_attribute: Mapping[str, Any], min_size: int, unit: str = "decisions"
) -> dict[str, Any]:
    """``{attribute: {group name: figures}}``, as training records it."""
    return {
        attribute: suppress_group_table(table, min_size, unit)
        if isinstance(table, Mapping)
        else table
        for attribute, table in by_attribute.items()
    }


def _without_comparison(group: dict[str, Any]) -> dict[str, Any]:
    if group.get("suppressed"):
        return group
    shown = {**group, **dict.fromkeys(f for f in GROUP_COMPARISON_FIELDS if f in group)}
    outcomes = group.get("outcomes")
    if isinstance(outcomes, Mapping) and not outcomes.get("suppressed"):
        shown["outcomes"] = {
            **outcomes,
            **dict.fromkeys(f for f in OUTCOME_COMPARISON_FIELDS if f in outcomes),
        }
    return shown


def suppress_comparison(comparison: Mapping[str, Any], min_size: int) -> dict[str, Any]:
    """One fairness comparison (``explain.fairness.stats.compare``'s shape): its groups, and its
    cross-group figures when any group was withheld. Every group is in the comparison (a group
    below the fairness minimum too), so every ratio, test and verdict used the withheld cell,
    and the verdicts' reasons name small groups: all of them go, marked
    ``comparison_suppressed``."""
    groups = list(comparison.get("groups") or [])
    result = {**comparison, "groups": suppress_group_list(groups, min_size)}
    small = [g for g in groups if is_small(g, min_size)]
    if not small:
        return result
    # How many groups were too small to compare would count the withheld ones.
    result["too_small_groups"] = None
    result.update(dict.fromkeys(COMPARISON_FIELDS))
    result["comparison_suppressed"] = True
    result["groups"] = [_without_comparison(g) for g in result["groups"]]
    return result


def suppress_fairness_report(report: Mapping[str, Any], min_size: int) -> dict[str, Any]:
    """A fairness report as a role without access to protected attributes may see it."""
    result = suppress_comparison(report, min_size)
    if isinstance(report.get("trend"), list):
        result["trend"] = [suppress_comparison(period, min_size) for period in report["trend"]]
    if isinstance(report.get("training"), Mapping):
        result["training"] = {
            version: suppress_group_table(table, min_size, "rows")
            if isinstance(table, Mapping) and all(isinstance(e, Mapping) for e in table.values())
            else table
            for version, table in report["training"].items()
        }
    return result


def _marked(entry: Mapping[str, Any], threshold: int) -> dict[str, Any]:
    marked = {**entry, MARK: is_small(entry, threshold)}
    outcomes = entry.get("outcomes")
    if isinstance(outcomes, Mapping):
        marked["outcomes"] = {**outcomes, MARK: is_small(outcomes, threshold)}
    return marked


def mark_group_list(groups: list[dict[str, Any]], threshold: int) -> list[dict[str, Any]]:
    """Every cell kept, each marked whether it is below the reporting threshold."""
    return [_marked(g, threshold) for g in groups]


def mark_group_table(
    table: Mapping[str, dict[str, Any]], threshold: int
) -> dict[str, dict[str, Any]]:
    return {name: _marked(entry, threshold) for name, entry in table.items()}


def mark_metrics_by_group(by_attribute: Mapping[str, Any], threshold: int) -> dict[str, Any]:
    return {
        attribute: mark_group_table(table, threshold) if isinstance(table, Mapping) else table
        for attribute, table in by_attribute.items()
    }


def metrics_by_group_for(
    role: Role, by_attribute: Mapping[str, Any], min_size: int
) -> dict[str, Any]:
    """Training's figures by group (rows of a data version) as ``role`` may see them."""
    if sees_every_cell(role):
        return mark_metrics_by_group(by_attribute, min_size)
    return suppress_metrics_by_group(by_attribute, min_size, "rows")


def fairness_report_for(role: Role, report: Mapping[str, Any], min_size: int) -> dict[str, Any]:
    """A fairness report (already marked for compliance) as ``role`` may see it."""
    if sees_every_cell(role):
        return dict(report)
    return suppress_fairness_report(report, min_size)


def without_group_counts(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report as roles that may not see protected attributes' groups read it: which feature
    predicts which attribute and how well, without the groups, their sizes or their own AUCs."""
    hidden = {"groups", "groups_assessed", "groups_left_out", "notes", "reason"}
    attributes = {}
    for name, entry in (report.get("attributes") or {}).items():
        kept = {k: v for k, v in entry.items() if k not in hidden}
        kept["features"] = [
            {k: v for k, v in f.items() if k != "group_auc"} for f in entry.get("features") or []
        ]
        if isinstance(entry.get("score"), Mapping):
            kept["score"] = {k: v for k, v in entry["score"].items() if k != "group_auc"}
        attributes[name] = kept
    summary = [s for s in report.get("summary") or [] if "not assessable" not in s]
    return {**report, "attributes": attributes, "summary": summary}
