"""Small cells: no group figure about a few people reaches a role that may not see protected
attributes; compliance keeps every cell, each marked when below the reporting threshold.

The pure rule on plain dicts first, then every place that shows group figures, on a real model
whose spec bins age by single year (the finding: a data scientist choosing such bins learned
individuals' sex and age from the card).
"""

from __future__ import annotations

import html
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core import cells
from core.auth.models import Role
from core.config import Settings
from tests.support.factories import DataRepo, applicant, cached_model

SMALL_AGE = "[29, 30)"
LARGE_AGE = "[35, 36)"


def _row(sex: str, n: int, **figures: Any) -> dict[str, Any]:
    return {
        "group": {"sex": sex},
        "n": n,
        "too_small": n < 30,
        "favourable": n // 2,
        "selection_rate": 0.5,
        "selection_rate_ci95": [0.4, 0.6],
        "outcomes": None,
        "disparate_impact_ratio": None,
        "four_fifths_violation": None,
        **figures,
    }


# The rule, on plain dicts ----------------------------------------------------------------------


def test_small_cells_lose_name_and_figures_and_merge_into_one_marked_row() -> None:
    groups = [_row("F", 1, selection_rate=1.0), _row("M", 40), _row("X", 3), _row("Y", 9)]
    shown = cells.suppress_group_list(groups, 10)
    assert shown[0] == groups[1], "a cell at or above the minimum is shown as it is"
    assert len(shown) == 2, "every small cell is in one row: their number does not show"
    withheld = shown[1]
    assert withheld["suppressed"] is True
    assert withheld["reason"] == "fewer than 10 decisions"
    assert withheld["group"] is None and withheld["n"] is None
    assert withheld["selection_rate"] is None and withheld["favourable"] is None
    assert set(groups[0]) <= set(withheld), "the row keeps the shape of the others"
    text = json.dumps(shown)
    assert '"F"' not in text and '"X"' not in text and '"Y"' not in text
    assert cells.suppress_group_list([_row("M", 40)], 10) == [_row("M", 40)]
    assert cells.is_small({"n": None}, 10) and cells.is_small({}, 10)
    assert not cells.is_small({"n": 10}, 10)


def test_a_shown_group_withholds_its_outcome_figures_when_few_outcomes_are_known() -> None:
    outcomes = {"n": 2, "true_positives": 1, "true_positive_rate": 0.5}
    [shown] = cells.suppress_group_list([_row("M", 40, outcomes=outcomes)], 10)
    assert shown["n"] == 40
    assert shown["outcomes"] == {
        "n": None,
        "true_positives": None,
        "true_positive_rate": None,
        "suppressed": True,
        "reason": "fewer than 10 decisions with an outcome",
    }


def test_comparisons_that_used_a_withheld_cell_are_withheld_too() -> None:
    # Compared groups are those at or above the fairness minimum; when that is set below the
    # cell minimum, a compared group can be a small cell, and every ratio to it tells its rate.
    report = {
        "groups": [
            _row("F", 5, too_small=False, disparate_impact_ratio=1.0),
            _row("M", 40, too_small=False, disparate_impact_ratio=0.5),
        ],
        "compared_groups": 2,
        "too_small_groups": 0,
        "most_favoured_group": {"sex": "F"},
        "disparate_impact_ratio_min": 0.5,
        "four_fifths_violation": True,
        "demographic_parity_difference": 0.5,
        "equal_opportunity_difference": None,
        "equalized_odds_difference": None,
        "selection_rate_test": {"p_value": 0.01},
        "trend": [{"period": "2026-11-01", "n": 45, "groups": [_row("F", 5), _row("M", 40)]}],
        "training": {"credit v1": {"F": {"n": 4, "selection_rate": 1.0}, "M": {"n": 80}}},
    }
    shown = cells.suppress_fairness_report(report, 10)
    for field in cells.COMPARISON_FIELDS:
        assert shown[field] is None, field
    assert shown["comparison_suppressed"] is True and shown["too_small_groups"] is None
    [male, withheld] = shown["groups"]
    assert male["n"] == 40 and male["disparate_impact_ratio"] is None
    assert withheld["suppressed"] is True
    assert [g.get("suppressed") for g in shown["trend"][0]["groups"]] == [None, True]
    training = shown["training"]["credit v1"]
    assert "F" not in training and training["M"] == {"n": 80}
    [row] = [v for k, v in training.items() if k != "M"]
    assert row["suppressed"] is True and row["reason"] == "fewer than 10 rows"
    # Nothing to withhold: the comparison stands.
    whole = cells.suppress_fairness_report({**report, "groups": [_row("M", 40)]}, 10)
    assert whole["most_favoured_group"] == {"sex": "F"} and "comparison_suppressed" not in whole


def test_a_table_keyed_by_group_name_never_names_a_withheld_group() -> None:
    table = {"(suppressed)": {"n": 50}, "rare": {"n": 2, "roc_auc": 1.0}, "common": {"n": 12}}
    shown = cells.suppress_group_table(table, 10, "rows")
    assert shown["(suppressed)"] == {"n": 50} and shown["common"] == {"n": 12}
    assert "rare" not in shown
    [key] = set(shown) - set(table)
    assert shown[key] == {
        "n": None,
        "roc_auc": None,
        "suppressed": True,
        "reason": "fewer than 10 rows",
    }
    marked = cells.mark_group_table(table, 10)
    assert [marked[k][cells.MARK] for k in table] == [False, True, False]
    assert marked["rare"]["n"] == 2, "compliance keeps the figures"


def test_compliance_keeps_every_cell_marked_and_other_roles_get_them_withheld() -> None:
    by_group = {"sex": {"F": {"n": 1, "selection_rate": 1.0}, "M": {"n": 40}}}
    full = cells.metrics_by_group_for(Role.compliance, by_group, 10)
    assert full["sex"]["F"] == {"n": 1, "selection_rate": 1.0, cells.MARK: True}
    assert cells.metrics_by_group_for(Role.admin, by_group, 10) == full
    for role in (Role.data_scientist, Role.appeals, Role.predictor, Role.outcomes):
        withheld = cells.metrics_by_group_for(role, by_group, 10)
        assert "F" not in withheld["sex"] and withheld["sex"]["M"] == {"n": 40}, role


# Every place that shows group figures, on a real model ------------------------------------------


@pytest.fixture
def aged(settings: Settings, data_repo: DataRepo, client: TestClient, auth: Any) -> dict[str, Any]:
    """Model `aged`, its spec binning age by single year, served live on endpoint `aged`."""
    version = cached_model(
        settings,
        data_repo,
        model="aged",
        protected=[
            {"name": "sex", "type": "categorical"},
            {"name": "age", "type": "numeric", "bins": list(range(18, 122))},
        ],
    )
    admin = auth(Role.admin)
    promoted = client.post(
        f"/api/v1/models/aged/versions/{version}/stage",
        headers=admin,
        json={"stage": "production", "reason": "tests"},
    )
    assert promoted.status_code == 201, promoted.text
    routed = client.put(
        "/api/v1/endpoints/aged",
        headers=admin,
        json={"routes": [{"model": "aged", "version": version}]},
    )
    assert routed.status_code == 200, routed.text
    return {"version": version}


def _decide(client: TestClient, auth: Any, contexts: list[dict[str, Any]]) -> None:
    response = client.post(
        "/api/v1/endpoints/aged/predict",
        headers=auth(Role.predictor),
        json={
            "instances": [
                {"features": applicant(income=30_000.0 + 1_000 * i), "context": context}
                for i, context in enumerate(contexts)
            ]
        },
    )
    assert response.status_code == 200, response.text


def _by_age(groups: list[dict[str, Any]]) -> dict[str | None, dict[str, Any]]:
    return {(g["group"] or {}).get("age"): g for g in groups}


def _live_section(page: str) -> str:
    return page.split("<h2>Live fairness</h2>", 1)[1].split("<h2>Gate</h2>", 1)[0]


def test_the_card_withholds_a_one_person_cell_from_a_data_scientist_and_marks_it_for_compliance(
    client: TestClient, auth: Any, aged: dict[str, Any]
) -> None:
    _decide(client, auth, [{"sex": "M", "age": 35}] * 40 + [{"sex": "F", "age": 29}])
    path = f"/api/v1/models/aged/versions/{aged['version']}/card"

    scientist = client.get(path, headers=auth(Role.data_scientist))
    assert scientist.status_code == 200, scientist.text
    [live] = scientist.json()["live_fairness"]
    assert live["n"] == 41
    groups = _by_age(live["groups"])
    assert set(groups) == {LARGE_AGE, None}
    large, withheld = groups[LARGE_AGE], groups[None]
    assert large["n"] == 40 and large["group"] == {"sex": "M", "age": LARGE_AGE}
    assert large["selection_rate"] is not None and large["selection_rate_ci95"] is not None
    assert withheld["suppressed"] is True and withheld["reason"] == "fewer than 10 decisions"
    assert withheld["n"] is None and withheld["selection_rate"] is None
    assert SMALL_AGE not in json.dumps(live) and '"F"' not in json.dumps(live)
    training = scientist.json()["metrics_by_group"]["age"]
    assert all(m.get("suppressed") or m["n"] >= 10 for m in training.values())
    assert sum(bool(m.get("suppressed")) for m in training.values()) == 1
    page = client.get(path, headers={**auth(Role.data_scientist), "Accept": "text/html"})
    section = _live_section(html.unescape(page.text))
    assert "fewer than 10 decisions: withheld" in section
    assert SMALL_AGE not in section and LARGE_AGE in section and "<td>40</td>" in section

    compliance = client.get(path, headers=auth(Role.compliance)).json()
    [live] = compliance["live_fairness"]
    assert live["reporting_threshold"] == compliance["reporting_threshold"] == 10
    groups = _by_age(live["groups"])
    assert groups[SMALL_AGE]["n"] == 1 and groups[SMALL_AGE]["group"]["sex"] == "F"
    assert groups[SMALL_AGE]["below_reporting_threshold"] is True
    assert groups[LARGE_AGE]["below_reporting_threshold"] is False
    training = compliance["metrics_by_group"]["age"]
    assert any(m["n"] < 10 and m["below_reporting_threshold"] for m in training.values())
    assert not any(m.get("suppressed") for m in training.values())
    page = client.get(path, headers={**auth(Role.compliance), "Accept": "text/html"})
    section = _live_section(html.unescape(page.text))
    assert f"{SMALL_AGE}" in section and "<td>1</td>" in section
    assert "below the reporting threshold" in section

    # The fairness report itself (compliance only) keeps the cell, marked; verdicts unchanged.
    report = client.get(
        "/api/v1/fairness",
        headers=auth(Role.compliance),
        params={"endpoint": "aged", "attribute": ["sex", "age"]},
    ).json()
    assert report["reporting_threshold"] == 10
    groups = _by_age(report["groups"])
    assert groups[SMALL_AGE]["below_reporting_threshold"] is True
    assert groups[SMALL_AGE]["n"] == 1 and groups[SMALL_AGE]["too_small"] is True
    assert groups[LARGE_AGE]["below_reporting_threshold"] is False
    single = client.get(
        "/api/v1/fairness",
        headers=auth(Role.compliance),
        params={"endpoint": "aged", "attribute": "age"},
    ).json()
    recorded = single["training"][f"aged v{aged['version']}"]
    assert all(m["below_reporting_threshold"] == (m["n"] < 10) for m in recorded.values())


def test_the_lineage_document_withholds_small_training_cells_from_a_data_scientist(
    client: TestClient, auth: Any, aged: dict[str, Any]
) -> None:
    base = f"/api/v1/models/aged/versions/{aged['version']}"
    recorded = client.get(f"{base}/lineage", headers=auth(Role.compliance)).json()["lineage"]
    ages = recorded["metrics_by_group"]["age"]
    small = {name for name, m in ages.items() if m["n"] < 10}
    assert small, "single-year bins leave small cells in the validation set"
    assert not any("suppressed" in m for m in ages.values()), "compliance reads the record"
    assert client.get(f"{base}/lineage", headers=auth(Role.admin)).json()["lineage"] == recorded

    shown = client.get(f"{base}/lineage", headers=auth(Role.data_scientist))
    assert shown.status_code == 200, shown.text
    lineage = shown.json()["lineage"]
    ages = lineage["metrics_by_group"]["age"]
    assert not small & set(ages)
    [withheld] = [m for m in ages.values() if m.get("suppressed")]
    assert withheld["reason"] == "fewer than 10 rows" and withheld["n"] is None
    assert all(m["n"] >= 10 for m in ages.values() if not m.get("suppressed"))
    assert lineage["metrics_by_group"]["sex"] == recorded["metrics_by_group"]["sex"]
    by_group = {"metrics_by_group", "proxies"}
    assert {k: v for k, v in lineage.items() if k not in by_group} == {
        k: v for k, v in recorded.items() if k not in by_group
    }
    # Proxies: which feature predicts which attribute, never the groups or their sizes.
    assert recorded["proxies"]["attributes"]["age"]["groups"]
    assert "groups" not in lineage["proxies"]["attributes"]["age"]
    assert "groups_left_out" not in json.dumps(lineage["proxies"])
    # The version view carries no figure by group at all.
    version = client.get(base, headers=auth(Role.data_scientist)).json()
    assert "metrics_by_group" not in json.dumps(version)
    assert set(version["metrics"]) == {"validation", "train"}
