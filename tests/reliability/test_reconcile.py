"""The drills' bookkeeping: what counts as lost, and what as logged but never seen."""

from __future__ import annotations

from reliability.load import Sent, reconcile
from reliability.report import Row, render


def _answered(subject: str, decision_id: str, label: int = 1, score: float = 0.7) -> Sent:
    return Sent(
        subjects=[subject],
        endpoint="credit",
        at=0.0,
        status=200,
        decisions=[{"decision_id": decision_id, "label": label, "score": score}],
    )


def _log(decision_id: str, label: int = 1, score: float = 0.7) -> dict[str, object]:
    return {"decision_id": decision_id, "label": label, "score": score}


def test_every_answer_in_the_log_is_nothing_lost() -> None:
    sent = [_answered("s1", "d1"), _answered("s2", "d2")]
    result = reconcile(sent, {"s1": _log("d1"), "s2": _log("d2")})
    assert (result["lost"], result["unseen_logged"], result["ok_200"]) == (0, 0, 2)


def test_a_missing_or_different_record_is_lost() -> None:
    sent = [_answered("s1", "d1"), _answered("s2", "d2"), _answered("s3", "d3", score=0.2)]
    log = {"s1": _log("d1"), "s2": _log("other"), "s3": _log("d3", score=0.9)}
    result = reconcile(sent, log)
    assert result["lost"] == 2
    assert sorted(result["lost_examples"]) == ["s2", "s3"]
    assert reconcile(sent[:1], {})["lost"] == 1


def test_logged_but_unanswered_and_failures_are_counted_apart() -> None:
    died = Sent(subjects=["s2"], endpoint="credit", at=1.0, error="ReadError")
    shed = Sent(subjects=["s3"], endpoint="credit", at=1.0, status=503, code="overloaded")
    result = reconcile([_answered("s1", "d1"), died, shed], {"s1": _log("d1"), "s2": _log("d2")})
    assert result["lost"] == 0
    assert result["unseen_logged"] == 1
    assert result["failures"] == {"ReadError": 1, "503 overloaded": 1}


def test_a_failed_drill_shows_in_the_table() -> None:
    rows = [
        Row("a", "l", "f", 1, 1, 1, 0, "yes", True, "cmd"),
        Row("b", "l", "f", 2, 1, 1, 1, "NO", False, "cmd", findings=["lost one"]),
    ]
    text = render(rows, "make reliability", "ci", 12.0, ["a note"])
    assert "| a | l | f | 1 | 1 | 1 | 0 | yes | pass |" in text
    assert "| b | l | f | 2 | 1 | 1 | 1 | NO | **FAIL** |" in text
    assert "- lost one" in text and "- a note" in text
