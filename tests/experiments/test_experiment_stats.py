"""The experiment's statistics over 200 seeds each: an A/A test read after every 50 decisions
per arm stops wrongly no more often than alpha with the sequential test; a challenger that is
better by the minimum detectable effect is found at least as often as the test's own final look
promises; the fixed horizon errs at alpha and finds the effect at its planned power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from governance.experiments import stats

SEEDS = range(200)
ALPHA, MDE, POWER, BASE = 0.05, 0.05, 0.8, 0.6
LOOK_EVERY = 50


def _run(seed: int, p_champion: float, p_challenger: float, rule: stats.Rule) -> str:
    """Decisions arrive one per arm at a time; the report is read every LOOK_EVERY of them,
    and the experiment stops at the first look that decides."""
    rng = np.random.default_rng(seed)
    champion = np.cumsum(rng.random(rule.per_arm) < p_champion)
    challenger = np.cumsum(rng.random(rule.per_arm) < p_challenger)
    looks = [*range(LOOK_EVERY, rule.per_arm, LOOK_EVERY), rule.per_arm]
    for n in looks:
        found = stats.compare(
            stats.proportion(int(champion[n - 1]), n),
            stats.proportion(int(challenger[n - 1]), n),
            rule,
        )
        if found["decision"] != stats.CONTINUE:
            return str(found["decision"])
    return stats.CONTINUE


def _rates(p_champion: float, p_challenger: float, rule: stats.Rule) -> dict[str, int]:
    outcomes = [_run(seed, p_champion, p_challenger, rule) for seed in SEEDS]
    return {d: outcomes.count(d) for d in (stats.CHALLENGER, stats.CHAMPION, stats.NO_DIFFERENCE)}


def _three_sd(p: float, n: int = len(SEEDS)) -> float:
    return 3 * math.sqrt(p * (1 - p) / n)


PLANNED = stats.planned_per_arm(BASE, MDE, ALPHA, POWER)


def test_the_planned_sample_is_the_z_tests() -> None:
    z = scipy_stats.norm.ppf(0.975) + scipy_stats.norm.ppf(0.8)
    assert PLANNED == math.ceil(z * z * 2 * 0.24 / 0.0025) == 1507


def test_an_a_a_experiment_read_at_every_look_stops_wrongly_at_most_at_alpha() -> None:
    rule = stats.Rule("msprt", ALPHA, MDE, "higher", per_arm=2 * PLANNED)
    found = _rates(BASE, BASE, rule)
    wrong = found[stats.CHALLENGER] + found[stats.CHAMPION]
    assert wrong / len(SEEDS) <= ALPHA, found
    assert found[stats.NO_DIFFERENCE] == len(SEEDS) - wrong, "the rest end at the last look"


def test_a_better_challenger_is_found_as_often_as_the_final_look_alone_promises() -> None:
    """The sequential test stops at least when its last look would: with the true variance,
    that is when |d| reaches the boundary, whose chance is a normal tail. Stopping earlier only
    adds to it."""
    rule = stats.Rule("msprt", ALPHA, MDE, "higher", per_arm=2 * PLANNED)
    found = _rates(BASE, BASE + MDE, rule)
    n = rule.per_arm
    variance = (BASE * (1 - BASE) + (BASE + MDE) * (1 - BASE - MDE)) / n
    bound = stats.msprt_boundary(variance, MDE, ALPHA)
    promised = float(scipy_stats.norm.sf((bound - MDE) / math.sqrt(variance)))
    rate = found[stats.CHALLENGER] / len(SEEDS)
    assert promised > 0.8
    assert rate >= promised - _three_sd(promised), (found, promised)
    assert found[stats.CHAMPION] == 0, found


@pytest.mark.parametrize("effect", [0.0, MDE])
def test_the_fixed_horizon_errs_at_alpha_and_finds_the_effect_at_its_power(effect: float) -> None:
    rule = stats.Rule("fixed_horizon", ALPHA, MDE, "higher", per_arm=PLANNED)
    found = _rates(BASE, BASE + effect, rule)
    if effect == 0:
        wrong = (found[stats.CHALLENGER] + found[stats.CHAMPION]) / len(SEEDS)
        assert abs(wrong - ALPHA) <= _three_sd(ALPHA), found
    else:
        rate = found[stats.CHALLENGER] / len(SEEDS)
        assert abs(rate - POWER) <= _three_sd(POWER), found
    assert sum(found.values()) == len(SEEDS), "a fixed horizon always decides at the horizon"


def test_no_verdict_below_the_minimum_and_lower_is_better_for_losses() -> None:
    rule = stats.Rule("msprt", ALPHA, 0.05, "lower", per_arm=1000)
    small = stats.compare(stats.proportion(1, 20), stats.proportion(19, 20), rule)
    assert small["decision"] == stats.CONTINUE and "30 decisions" in small["reason"]
    clear = stats.compare(stats.proportion(100, 500), stats.proportion(40, 500), rule)
    assert clear["decision"] == stats.CHALLENGER, "a lower default rate is better"
    low, high = clear["interval"]
    assert low < clear["difference"] < high < 0


def test_the_paired_variance_is_mcnemars_and_the_auc_matches_scikit_learn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    scores = rng.integers(0, 20, 400)
    truth = rng.random(400) < 1 / (1 + np.exp(-(scores - 10) / 4))
    positives = [int(((scores == b) & truth).sum()) for b in range(20)]
    negatives = [int(((scores == b) & ~truth).sum()) for b in range(20)]
    found = stats.auc_from_bins(positives, negatives)
    assert found.value == pytest.approx(roc_auc_score(truth, scores))
    assert found.variance is not None and 0 < found.variance < 0.01
    # The same 100 subjects: 10 approved only by the challenger, 4 only by the champion.
    assert stats.paired_proportion_variance(10, 4, 100) == pytest.approx((14 - 36 / 100) / 1e4)


def test_a_sample_ratio_mismatch_is_flagged_and_a_fair_split_is_not() -> None:
    fair = stats.sample_ratio([4_980, 5_020], [1, 1])
    assert fair["mismatch"] is False and fair["p_value"] > 0.5
    broken = stats.sample_ratio([9_000, 1_300], [0.9, 0.1])
    assert broken["mismatch"] is True and broken["p_value"] < 1e-6
    assert stats.sample_ratio([0, 0], [1, 1])["mismatch"] is None


def test_the_p99_interval_covers_the_true_quantile_at_least_95_percent_of_the_time() -> None:
    """Order statistics at the binomial ranks bound the 99th percentile of any distribution:
    over 200 samples of 2,000 exponential latencies, the interval holds the true p99 at least
    as often as promised, less three standard deviations of the count."""
    truth = -math.log(0.01)  # the exponential's 99th percentile, scale 1
    ranks = stats.quantile_ranks(2000)
    assert ranks is not None
    low, point, high = ranks
    assert low < point == 1980 < high <= 2000
    covered = 0
    for seed in SEEDS:
        values = np.sort(np.random.default_rng(seed).exponential(size=2000))
        covered += values[low - 1] <= truth <= values[high - 1]
    assert covered / len(SEEDS) >= 0.95 - _three_sd(0.95), covered
    assert stats.quantile_ranks(100) is None, "100 values cannot bound a 99th percentile"


def test_a_small_arm_holds_no_guardrail_and_breaches_none() -> None:
    """Ten decisions, five per group, two out of distribution, all fast: every guardrail is
    not_assessable, never holds or breached; a thousand in the same proportions decide."""
    from governance.experiments import query
    from governance.experiments.service import _guardrails

    arm = query.ArmSpec("challenger-1", "credit", 2, "canary", "challenger-1")
    rails = {"attributes": ["sex"], "max_ood_rate": 0.1, "max_p99_latency_ms": 50}
    small = query.ArmCounts(
        n=10, outliers=2, timed=10, groups={"sex": {"F": (5, 1, 0), "M": (5, 4, 0)}}
    )
    found, breaches = _guardrails(arm, small, rails, 30, True, [1.0] * 10)
    assert {k: v["state"] for k, v in found.items()} == {
        "disparate_impact:sex": "not_assessable",
        "ood_rate": "not_assessable",
        "p99_latency_ms": "not_assessable",
    } and breaches == []
    large = query.ArmCounts(
        n=1000, outliers=200, timed=0, groups={"sex": {"F": (500, 100, 0), "M": (500, 400, 0)}}
    )
    found, breaches = _guardrails(arm, large, rails, 30, True, [])
    assert found["disparate_impact:sex"]["state"] == "breached"
    assert found["ood_rate"]["state"] == "breached"
    assert {b["guardrail"] for b in breaches} == {"disparate_impact:sex", "ood_rate"}
