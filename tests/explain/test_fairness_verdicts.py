"""Fairness verdicts that say when they cannot say (issue 17): every verdict is `holds`,
`violated` or `not_assessable` with its reasons; a small group is marked and kept in the
ratios, never dropped; each ratio has a 95% interval; exact tests when expected counts are small;
false alarms at most at the nominal rate on same-distribution samples.

The pure comparison first (seeded binomial draws shaped like loan books: small groups, unequal
sizes, groups without outcomes), then the API on both databases, the CLI and the model card, and
a protected attribute that is also a model feature.
"""

from __future__ import annotations

import html
import itertools
import math
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from scipy import stats
from typer.testing import CliRunner

from core.audit import ledger
from core.auth.models import Role
from core.config import Settings
from core.db import session_factory, transaction
from explain.fairness.stats import GroupCounts, compare, final_counts, ratio_ci
from governance.cli import app as cli
from lineage.synthetic import applicant_features, demo_spec, generate_loans
from serving.decision_log import CHAIN, columns_of
from serving.models import DecisionRecord
from tests.conftest import Served
from tests.support.factories import DataRepo, cached_model, promote

DEFAULT_MIN: int = Settings.model_fields["fairness_min_group_size"].default
VERDICTS = {"holds", "violated", "not_assessable"}


def _issue_example() -> list[GroupCounts]:
    """The issue's finding: 20 decisions at a 50% selection rate next to 50 at 80%."""
    return [GroupCounts(("F",), 20, 10), GroupCounts(("M",), 50, 40)]


def _draw(rng: np.random.Generator, sizes: list[int], rates: list[float]) -> list[GroupCounts]:
    return [
        GroupCounts((f"g{i}",), n, int(rng.binomial(n, p)))
        for i, (n, p) in enumerate(zip(sizes, rates, strict=True))
    ]


# The pure comparison ---------------------------------------------------------------------------


def test_the_issue_example_is_not_assessable_at_the_default_minimum_naming_the_small_group() -> (
    None
):
    assert DEFAULT_MIN > 20, "the finding: the default minimum is above the small group's 20"
    report = compare(_issue_example(), ["sex"], DEFAULT_MIN)
    assert report["four_fifths_verdict"] == "not_assessable"
    assert report["four_fifths_violation"] is None, "never False when nothing was assessed"
    # The small group is in the ratio, not dropped: DI 0.625 with its interval.
    assert report["disparate_impact_ratio_min"] == pytest.approx(0.625)
    low, high = report["disparate_impact_ratio_min_ci95"]
    assert low < 0.625 < high
    assert report["least_favoured_group"] == {"sex": "F"}
    assert report["most_favoured_group"] == {"sex": "M"}
    women = report["groups"][0]
    assert women["group"] == {"sex": "F"} and women["n"] == 20 and women["favourable"] == 10
    assert women["below_minimum_size"] is True and women["too_small"] is True
    assert women["disparate_impact_ratio"] == pytest.approx(0.625)
    assert women["four_fifths_verdict"] == "not_assessable"
    [reason] = report["verdict_reasons"]
    assert "sex=F" in reason and "20 decisions" in reason and f"minimum of {DEFAULT_MIN}" in reason
    assert report["selection_rate_test"]["p_value"] == pytest.approx(0.01207, abs=1e-4)


def test_the_issue_example_is_violated_with_a_minimum_of_10() -> None:
    report = compare(_issue_example(), ["sex"], 10)
    assert report["four_fifths_verdict"] == "violated"
    assert report["four_fifths_violation"] is True
    assert report["disparate_impact_ratio_min"] == pytest.approx(0.625)
    women = report["groups"][0]
    assert women["four_fifths_verdict"] == "violated" and women["below_minimum_size"] is False
    test = women["test_vs_most_favoured"]
    assert test["test"] == "chi-squared test"
    expected = stats.chi2_contingency([[10, 10], [40, 10]], correction=False).pvalue
    assert test["p_value"] == pytest.approx(expected, rel=1e-9)
    assert test["p_value"] == pytest.approx(0.012, abs=5e-4)
    [reason] = report["verdict_reasons"]
    assert "sex=F" in reason and "0.625" in reason and "significant" in reason


def test_a_small_group_is_never_dropped_but_cannot_hide_a_violation_between_large_ones() -> None:
    rng = np.random.default_rng(11)
    groups = _draw(rng, [1000, 1000, 6], [0.6, 0.36, 0.5])
    report = compare(groups, ["race"], DEFAULT_MIN)
    assert len(report["groups"]) == 3
    small = report["groups"][2]
    assert small["below_minimum_size"] is True and small["disparate_impact_ratio"] is not None
    assert small["four_fifths_verdict"] == "not_assessable"
    assert report["four_fifths_verdict"] == "violated"
    assert any("race=g2" in r and "not assessed" in r for r in report["verdict_reasons"])
    # Without the violation between the large groups, the small one makes it not assessable.
    fair = compare(_draw(rng, [1000, 1000, 6], [0.6, 0.6, 0.6]), ["race"], DEFAULT_MIN)
    assert fair["four_fifths_verdict"] == "not_assessable"
    assert any("race=g2 has 6 decisions" in r for r in fair["verdict_reasons"])


def test_a_ratio_below_four_fifths_that_is_not_significant_is_not_assessable() -> None:
    # 40 decisions each, 45% against 60%: ratio 0.75, chi-squared p about 0.18.
    groups = [GroupCounts(("a",), 40, 18), GroupCounts(("b",), 40, 24)]
    report = compare(groups, ["g"], DEFAULT_MIN)
    assert report["disparate_impact_ratio_min"] == pytest.approx(0.75)
    assert report["four_fifths_verdict"] == "not_assessable"
    assert report["four_fifths_violation"] is None
    [reason] = report["verdict_reasons"]
    assert "below 0.8 but not statistically significant at this sample size" in reason


def test_pairwise_tests_are_holm_adjusted_over_every_pair_of_large_groups() -> None:
    # Four groups of 60; one at 40% against three at 60%: raw p of the pair about 0.028 (< 0.05),
    # but 6 pairs are compared: Holm's adjustment takes it above 0.05.
    groups = [GroupCounts((f"g{i}",), 60, 36) for i in range(3)] + [GroupCounts(("g3",), 60, 24)]
    report = compare(groups, ["g"], DEFAULT_MIN)
    low = report["groups"][3]
    assert low["disparate_impact_ratio"] == pytest.approx(2 / 3)
    assert low["test_vs_most_favoured"]["p_value"] < 0.05
    assert low["test_vs_most_favoured"]["pairs_adjusted_over"] == 6
    assert low["test_vs_most_favoured"]["p_value_holm"] > 0.05
    assert report["four_fifths_verdict"] == "not_assessable"
    # Twice the decisions, and the same disparity is significant after adjustment.
    doubled = [GroupCounts(g.key, 2 * g.n, 2 * g.selected) for g in groups]
    assert compare(doubled, ["g"], DEFAULT_MIN)["four_fifths_verdict"] == "violated"


def test_holds_only_when_every_group_is_large_enough_and_says_how_low_a_ratio_could_be() -> None:
    groups = [GroupCounts(("a",), 60, 30), GroupCounts(("b",), 60, 33)]
    report = compare(groups, ["g"], DEFAULT_MIN)
    assert report["four_fifths_verdict"] == "holds"
    assert report["four_fifths_violation"] is False
    assert report["groups"][0]["disparate_impact_ratio_ci95"][0] < 0.8
    assert any("could be as low as" in r for r in report["verdict_reasons"])
    large = [GroupCounts(("a",), 5000, 2500), GroupCounts(("b",), 5000, 2550)]
    assert compare(large, ["g"], DEFAULT_MIN)["four_fifths_verdict"] == "holds"
    assert not any(
        "could be as low as" in r for r in compare(large, ["g"], DEFAULT_MIN)["verdict_reasons"]
    )


def test_no_favourable_decision_in_any_group_is_not_assessable() -> None:
    groups = [GroupCounts(("a",), 400, 0), GroupCounts(("b",), 300, 0)]
    report = compare(groups, ["g"], DEFAULT_MIN)
    assert report["four_fifths_verdict"] == "not_assessable"
    assert report["verdict_reasons"] == [
        "no favourable decisions in any group: the ratios are undefined"
    ]
    assert report["disparate_impact_ratio_min"] is None
    assert report["selection_rate_test"] is None
    assert all(g["four_fifths_verdict"] == "not_assessable" for g in report["groups"])
    single = compare([GroupCounts(("a",), 400, 100)], ["g"], DEFAULT_MIN)
    assert single["four_fifths_verdict"] == "not_assessable"
    assert "only one group" in single["verdict_reasons"][0]


def test_groups_without_outcomes_make_equal_opportunity_not_assessable_naming_them() -> None:
    groups = [
        GroupCounts(("a",), 400, 240, with_outcome=300, actual_favourable=200, true_positives=150),
        GroupCounts(("b",), 400, 230, with_outcome=0),
        GroupCounts(("c",), 400, 235, with_outcome=40, actual_favourable=0),
    ]
    report = compare(groups, ["g"], DEFAULT_MIN)
    assert report["four_fifths_verdict"] == "holds", "selection rates are assessable"
    assert report["equal_opportunity_verdict"] == "not_assessable"
    reasons = report["equal_opportunity_verdict_reasons"]
    assert "group g=b has no recorded outcomes" in reasons
    assert any(r.startswith("group g=c has no recorded favourable outcome") for r in reasons)
    assert report["equal_opportunity_difference"] is None
    assert report["groups"][1]["outcomes"] is None
    assert report["groups"][2]["outcomes"]["equal_opportunity_verdict"] == "not_assessable"
    nothing = compare([GroupCounts(("a",), 400, 240), GroupCounts(("b",), 400, 200)], ["g"], 30)
    assert nothing["equal_opportunity_verdict"] == "not_assessable"
    assert nothing["equal_opportunity_verdict_reasons"] == ["no outcomes recorded for any group"]
    # With outcomes everywhere and a real gap in true positive rates, it is violated.
    full = [
        GroupCounts(("a",), 900, 500, with_outcome=900, actual_favourable=500, true_positives=450),
        GroupCounts(("b",), 900, 300, with_outcome=900, actual_favourable=500, true_positives=250),
    ]
    assert compare(full, ["g"], 30)["equal_opportunity_verdict"] == "violated"


def _exact_permutation_p(table: list[tuple[int, int]]) -> float:
    """The exact conditional p-value of Pearson's statistic, margins fixed: every table with the
    same group sizes and total of successes, weighted by the multivariate hypergeometric law."""
    sizes = [k + f for k, f in table]
    total, successes = sum(sizes), sum(k for k, _f in table)
    columns = np.array([successes, total - successes], dtype=float)
    expected = np.outer(sizes, columns) / total

    def pearson(ks: tuple[int, ...]) -> float:
        observed = np.array([[k, n - k] for k, n in zip(ks, sizes, strict=True)], dtype=float)
        return float(((observed - expected) ** 2 / expected).sum())

    observed = pearson(tuple(k for k, _f in table))
    p = 0.0
    for ks in itertools.product(*(range(n + 1) for n in sizes)):
        if sum(ks) == successes and pearson(ks) >= observed * (1 - 1e-9):
            p += math.prod(math.comb(n, k) for n, k in zip(sizes, ks, strict=True))
    return p / math.comb(total, successes)


def test_exact_tests_are_used_when_expected_counts_are_small() -> None:
    # Two groups: Fisher's exact test, as scipy computes it.
    two = [GroupCounts(("a",), 10, 1), GroupCounts(("b",), 12, 8)]
    test = compare(two, ["g"], 10)["selection_rate_test"]
    assert test["test"].startswith("Fisher's exact test") and test["min_expected_count"] < 5
    assert test["p_value"] == pytest.approx(stats.fisher_exact([[1, 9], [8, 4]]).pvalue)
    assert compare(two, ["g"], 10)["groups"][0]["test_vs_most_favoured"]["test"] == (
        "Fisher's exact test"
    )
    # Three groups: a seeded Monte Carlo permutation test; same seed, same p, and it agrees
    # with the exact conditional p-value computed by enumeration.
    three = [GroupCounts(("a",), 8, 1), GroupCounts(("b",), 9, 6), GroupCounts(("c",), 12, 8)]
    first = compare(three, ["g"], 5, seed=3)["selection_rate_test"]
    again = compare(three, ["g"], 5, seed=3)["selection_rate_test"]
    other = compare(three, ["g"], 5, seed=4)["selection_rate_test"]
    assert first["test"].startswith("Monte Carlo permutation test")
    assert first["seed"] == 3 and first["resamples"] == 9_999
    assert first["p_value"] == again["p_value"]
    assert other["seed"] == 4
    exact = _exact_permutation_p([(1, 7), (6, 3), (8, 4)])
    margin = 4 * math.sqrt(exact * (1 - exact) / 9_999) + 1e-4
    assert abs(first["p_value"] - exact) < margin and abs(other["p_value"] - exact) < margin
    # Large expected counts: the asymptotic chi-squared test.
    big = [
        GroupCounts(("a",), 300, 150),
        GroupCounts(("b",), 300, 170),
        GroupCounts(("c",), 300, 160),
    ]
    assert compare(big, ["g"], 30)["selection_rate_test"]["test"].startswith("Pearson")


def test_the_ratio_interval_contains_the_estimate_and_is_wider_for_smaller_groups() -> None:
    small = compare([GroupCounts(("a",), 30, 15), GroupCounts(("b",), 30, 24)], ["g"], 1)
    large = compare([GroupCounts(("a",), 3000, 1500), GroupCounts(("b",), 3000, 2400)], ["g"], 1)
    for report in (small, large):
        entry = report["groups"][0]
        low, high = entry["disparate_impact_ratio_ci95"]
        assert entry["disparate_impact_ratio"] == pytest.approx(0.625)
        assert low < entry["disparate_impact_ratio"] < high
        assert report["groups"][1]["disparate_impact_ratio_ci95"] is None, "the reference"
    width = [r["groups"][0]["disparate_impact_ratio_ci95"] for r in (small, large)]
    assert width[0][1] - width[0][0] > 5 * (width[1][1] - width[1][0])
    # A count of 0: the 0.5 correction; the interval still contains the estimate 0.
    zero = ratio_ci(0, 25, 20, 40)
    assert zero is not None and zero[0] == 0.0 and 0 < zero[1] < 1
    assert ratio_ci(5, 10, 0, 10) is None, "no ratio to a group with no favourable decision"


def test_the_ratio_interval_covers_the_true_ratio_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(5)
    covered = 0
    for _ in range(2000):
        k1, k2 = int(rng.binomial(150, 0.45)), int(rng.binomial(200, 0.6))
        interval = ratio_ci(k1, 150, k2, 200)
        assert interval is not None
        covered += interval[0] <= 0.75 <= interval[1]
    assert 0.93 <= covered / 2000 <= 0.97


@pytest.mark.parametrize("size", [30, 1000])
@pytest.mark.parametrize("groups", [2, 3])
def test_same_distribution_samples_are_flagged_at_most_at_the_nominal_rate(
    size: int, groups: int
) -> None:
    violated = 0
    for seed in range(100):
        rng = np.random.default_rng([size, groups, seed])
        report = compare(_draw(rng, [size] * groups, [0.6] * groups), ["g"], DEFAULT_MIN)
        assert report["four_fifths_verdict"] in VERDICTS
        violated += report["four_fifths_verdict"] == "violated"
    assert violated / 100 <= 0.08


def test_a_real_disparity_at_1000_per_group_is_violated() -> None:
    for seed in range(20):
        rng = np.random.default_rng([1000, seed])
        report = compare(_draw(rng, [1000, 1000], [0.6, 0.36]), ["g"], DEFAULT_MIN)
        assert report["four_fifths_verdict"] == "violated", seed
        assert report["disparate_impact_ratio_min"] == pytest.approx(0.6, abs=0.1)
        assert report["disparate_impact_ratio_min_ci95"][1] < 0.8


# Through the API, the CLI and the model card -------------------------------------------------


def _route(client: TestClient, served: Served, endpoint: str) -> None:
    response = client.put(
        f"/api/v1/endpoints/{endpoint}",
        headers=served.headers,
        json={"routes": [{"model": "credit", "version": served.versions[0]}]},
    )
    assert response.status_code == 200, response.text


def _log(engine: sa.Engine, served: Served, endpoint: str, rows: list[tuple[dict, str]]) -> None:
    """Decisions with chosen labels, appended to the real hash chain."""
    at = datetime.now(UTC).isoformat()
    contents = [
        {
            "decision_id": str(uuid.uuid4()),
            "kind": "decision",
            "created_at": at,
            "endpoint": endpoint,
            "key_id": "test",
            "model": {"name": "credit", "version": served.versions[0], "sha256": "0" * 64},
            "route": "live",
            "subject_id": None,
            "features": {},
            "context": context,
            "label": label,
            "score": 0.5,
        }
        for context, label in rows
    ]
    with transaction(session_factory(engine)) as session:
        ledger.append(
            session,
            chain=CHAIN,
            table=DecisionRecord.__table__,
            contents=contents,
            columns_of=columns_of,
        )


def _issue_rows() -> list[tuple[dict, str]]:
    women = [({"sex": "F", "age": 30}, "1" if i < 10 else "0") for i in range(20)]
    men = [({"sex": "M", "age": 45}, "1" if i < 40 else "0") for i in range(50)]
    return women + men


def test_the_small_group_through_the_api_the_cli_and_the_card(
    client: TestClient, auth: Any, served: Served, engine: sa.Engine, env_settings: Settings
) -> None:
    _route(client, served, "book")
    _log(engine, served, "book", _issue_rows())
    compliance = auth(Role.compliance)

    def report(**params: Any) -> dict[str, Any]:
        response = client.get(
            "/api/v1/fairness",
            headers=compliance,
            params={"endpoint": "book", "attribute": "sex", **params},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    body = report(window="month")
    assert body["n"] == 70 and body["min_group_size"] == DEFAULT_MIN
    assert body["four_fifths_verdict"] == "not_assessable"
    assert body["four_fifths_violation"] is None
    assert body["disparate_impact_ratio_min"] == pytest.approx(0.625)
    low, high = body["disparate_impact_ratio_min_ci95"]
    assert low < 0.625 < high
    groups = {g["group"]["sex"]: g for g in body["groups"]}
    assert groups["F"]["below_minimum_size"] is True and groups["F"]["n"] == 20
    assert groups["F"]["disparate_impact_ratio"] == pytest.approx(0.625)
    assert groups["F"]["disparate_impact_ratio_ci95"] == [low, high]
    assert any("sex=F has 20 decisions" in r for r in body["verdict_reasons"])
    assert body["seed"] == 0 and body["resamples"] == 9_999
    assert body["verdict_rule"]["ratio_threshold"] == 0.8
    [period] = body["trend"]
    assert period["four_fifths_verdict"] == "not_assessable"
    assert period["disparate_impact_ratio_min"] == pytest.approx(0.625)

    ten = report(min_group_size=10)
    assert ten["four_fifths_verdict"] == "violated" and ten["four_fifths_violation"] is True
    [women] = [g for g in ten["groups"] if g["group"]["sex"] == "F"]
    assert women["four_fifths_verdict"] == "violated"
    assert women["test_vs_most_favoured"]["p_value"] == pytest.approx(0.0121, abs=2e-4)

    printed = CliRunner().invoke(cli, ["fairness", "--endpoint", "book", "--attribute", "sex"])
    assert printed.exit_code == 0, printed.output
    assert "four-fifths rule: not_assessable" in printed.output
    assert "four-fifths rule: holds" not in printed.output
    assert "sex=F has 20 decisions" in " ".join(printed.output.split())
    strict = CliRunner().invoke(
        cli,
        ["fairness", "--endpoint", "book", "--attribute", "sex", "--min-group-size", "10"],
    )
    assert strict.exit_code == 0, strict.output
    assert "four-fifths rule: violated" in strict.output

    path = f"/api/v1/models/credit/versions/{served.versions[0]}/card"
    card = client.get(path, headers=compliance)
    assert card.status_code == 200, card.text
    [live] = [r for r in card.json()["live_fairness"] if r["endpoint"] == "book"]
    assert live["four_fifths_verdict"] == "not_assessable"
    assert any("sex=F" in r for r in live["verdict_reasons"])
    page = html.unescape(client.get(path, headers={**compliance, "Accept": "text/html"}).text)
    section = page.split("<h2>Live fairness</h2>", 1)[1].split("<h2>Gate</h2>", 1)[0]
    assert "Four-fifths rule: <strong" in section and ">not_assessable</strong>" in section
    assert live["verdict_reasons"][0] in section
    assert "0.625 (" in section, "the ratio and its interval are on the card"


def test_a_protected_attribute_that_is_a_model_feature_is_grouped_from_the_features(
    settings: Settings, data_repo: DataRepo, client: TestClient, auth: Any
) -> None:
    spec = demo_spec(model="aged", dataset={"name": "x", "repo": "x", "path": "x", "rev": "x"})
    assert isinstance(spec["features"], list)
    version = cached_model(
        settings,
        data_repo,
        model="aged",
        features=[*spec["features"], {"name": "age", "type": "numeric", "bounds": [18, 120]}],
        protected=[
            {"name": "sex", "type": "categorical"},
            {
                "name": "age",
                "type": "numeric",
                "bins": [18, 25, 40, 60, 120],
                "justification": "Age is used in an empirically derived, demonstrably and "
                "statistically sound scorecard (Reg B, 12 CFR 1002.6(b)(2)).",
            },
        ],
    )
    admin = auth(Role.admin)
    promote(client, admin, "aged", version)
    routed = client.put(
        "/api/v1/endpoints/aged",
        headers=admin,
        json={"routes": [{"model": "aged", "version": version}]},
    )
    assert routed.status_code == 200, routed.text
    rows = generate_loans(90, seed=33).to_dict(orient="records")
    decided = client.post(
        "/api/v1/endpoints/aged/predict",
        headers=auth(Role.predictor),
        json={
            "instances": [
                {
                    "features": {**applicant_features(row), "age": int(row["age"])},
                    "context": {"sex": str(row["sex"])},
                }
                for row in rows
            ]
        },
    )
    assert decided.status_code == 200, decided.text
    response = client.get(
        "/api/v1/fairness",
        headers=auth(Role.compliance),
        params={"endpoint": "aged", "attribute": "age", "min_group_size": 1},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["attributes"] == [
        {"name": "age", "bins": [18.0, 25.0, 40.0, 60.0, 120.0], "source": "features"}
    ]
    expected: dict[str, int] = {}
    for row in rows:
        band = next(
            f"[{lo}, {hi})"
            for lo, hi in ((18, 25), (25, 40), (40, 60), (60, 120))
            if lo <= row["age"] < hi
        )
        expected[band] = expected.get(band, 0) + 1
    assert {g["group"]["age"]: g["n"] for g in body["groups"]} == expected
    assert "unbinned" not in expected and body["four_fifths_verdict"] in VERDICTS


def _tally(rows: list[tuple[str, str, str | None]], favourable: str = "1") -> list[GroupCounts]:
    """Counts by group from (group, label, outcome) rows, one by one."""
    by: dict[str, list[tuple[str, str | None]]] = {}
    for group, label, outcome in rows:
        by.setdefault(group, []).append((label, outcome))
    return [
        GroupCounts(
            key=(group,),
            n=len(found),
            selected=sum(label == favourable for label, _ in found),
            with_outcome=sum(outcome is not None for _, outcome in found),
            actual_favourable=sum(outcome == favourable for _, outcome in found),
            true_positives=sum(
                label == favourable and outcome == favourable for label, outcome in found
            ),
            false_positives=sum(
                label == favourable and outcome not in (None, favourable)
                for label, outcome in found
            ),
        )
        for group, found in sorted(by.items())
    ]


@pytest.mark.parametrize("seed", range(20))
def test_final_decisions_count_each_overturn_with_the_persons_label(seed: int) -> None:
    """The final counts, derived from the automated counts and the overturned decisions' counts,
    equal a count of the decisions one by one with each overturned label replaced: small groups,
    three classes, missing outcomes, overturns both ways."""
    rng = np.random.default_rng(seed)
    rows, overturns = [], {}
    for i in range(int(rng.integers(1, 60))):
        group = str(rng.choice(["a", "b", "c"], p=[0.7, 0.25, 0.05]))
        label = str(rng.choice(["0", "1", "2"]))
        outcome = None if rng.random() < 0.3 else str(rng.choice(["0", "1"]))
        rows.append((group, label, outcome))
        if rng.random() < 0.2:
            overturns[i] = str(rng.choice([c for c in ("0", "1", "2") if c != label]))
    automated = _tally(rows)
    overturned = _tally([rows[i] for i in overturns])
    made_favourable = _tally([rows[i] for i, to in overturns.items() if to == "1"])
    final = [(g, overturns.get(i, label), o) for i, (g, label, o) in enumerate(rows)]
    assert final_counts(automated, overturned, made_favourable) == _tally(final)
