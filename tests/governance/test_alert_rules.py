"""The probing rules and what an alert says, on requests built in memory (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from governance.audit.alerts import NearThreshold, Scored, _apply_rules, _detail
from governance.audit.probing import ProbeRules
from lineage.input_schema import InputSchema

RULES = ProbeRules(window_s=600.0, min_requests=3, score_band=0.05, near_distance=0.02)
SCHEMA = {
    "features": [{"name": "income", "type": "numeric", "observed_range": [0.0, 1000.0]}],
    "target": "repaid",
    "classes": [0, 1],
    "positive_class": 1,
    "threshold": 0.5,
}
AT = datetime(2025, 1, 1, tzinfo=UTC)


def _request(ident: str, income: float, score: float, *, replay: bool = False) -> Scored:
    return Scored(ident, score, {"income": income}, AT + timedelta(seconds=income), replay)


def _near(*scored: Scored) -> NearThreshold:
    return NearThreshold(InputSchema.from_document(SCHEMA), 0.5, list(scored))


def test_fewer_requests_near_the_threshold_than_the_rule_asks_raise_nothing() -> None:
    assert _apply_rules(RULES, _near(_request("a", 100, 0.5), _request("b", 101, 0.51))) is None


def test_requests_near_the_threshold_but_far_apart_raise_nothing() -> None:
    # Three near the threshold, but only two near each other (1% of the range apart; 50% away).
    spread = _near(_request("a", 100, 0.5), _request("b", 110, 0.49), _request("c", 600, 0.52))
    assert _apply_rules(RULES, spread) is None


def test_enough_near_duplicates_probe_and_the_alert_counts_decisions_and_replays() -> None:
    found = _near(
        _request("d1", 100, 0.48),
        _request("d2", 105, 0.53),
        _request("d1", 108, 0.5, replay=True),
        _request("d1", 112, 0.51, replay=True),
        _request("far", 900, 0.5, replay=True),
    )
    probing = _apply_rules(RULES, found)
    assert probing is not None
    assert probing.near == 4 and probing.mask == [True, True, True, True, False]
    assert _detail(RULES, probing) == {
        "rule": "at least 3 near-duplicate inputs (decisions and replays) scored within 0.05 of "
        "the threshold in 600s",
        "threshold": 0.5,
        "score_band": 0.05,
        "near_distance": 0.02,
        "window_s": 600.0,
        "near_threshold": 5,
        "near_duplicates": 4,
        "from_replays": 3,
        "near_duplicates_from_replays": 2,
        "score_range": [0.48, 0.53],
        "examples": ["d1", "d2"],
        "replayed_decisions": ["d1", "far"],
    }
