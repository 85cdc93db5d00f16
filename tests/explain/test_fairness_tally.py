"""The fairness tallies: kept up to date by counting only what is new, they always equal a count
from the start, through new decisions, new and corrected outcomes, a retention purge and a
replaced log."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from core.auth.models import Role
from core.db import session_factory, transaction
from explain.fairness.query import Attribute, Filters, run_counts
from explain.fairness.tally import Tallies, combine, tallies_of
from governance.compliance import retention
from serving import outcomes
from serving.models import DecisionOutcome, DecisionRecord
from tests.conftest import Served
from tests.explain.test_fairness import _endpoint, _insert

DECISIONS = DecisionRecord.__table__
OUTCOMES = DecisionOutcome.__table__
FILTERS = Filters(endpoint="history")
ATTRIBUTES = (Attribute("sex"), Attribute("age", bins=(18.0, 40.0, 60.0, 120.0)))


def _rows(rng: np.random.Generator, n: int, start: datetime) -> list[tuple[datetime, dict, str]]:
    return [
        (
            start + timedelta(hours=int(rng.integers(0, 24 * 60))),
            {"sex": str(rng.choice(["F", "M", "X"])), "age": int(rng.integers(18, 80))},
            str(int(rng.integers(0, 2))),
        )
        for _ in range(n)
    ]


def _from_the_start(engine: sa.Engine, window: str | None) -> Any:
    with engine.connect() as connection:
        return run_counts(connection, FILTERS, ATTRIBUTES, "1", window)


def _tallied(tallies: Tallies, engine: sa.Engine, window: str | None) -> Any:
    with engine.connect() as connection:
        return tallies.counts(connection, FILTERS, ATTRIBUTES, "1", window)


def _record_outcomes(engine: sa.Engine, pairs: list[tuple[str, str]]) -> None:
    with engine.begin() as connection:
        for decision_id, outcome in pairs:
            connection.execute(
                OUTCOMES.insert().values(
                    decision_id=decision_id,
                    outcome=outcome,
                    observed_at=datetime.now(UTC),
                    recorded_at=datetime.now(UTC),
                    recorded_by="test",
                )
            )


def _decision_ids(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(DECISIONS.c.decision_id).order_by(DECISIONS.c.seq)
            ).scalars()
        )


@pytest.mark.parametrize("window", [None, "month"])
def test_a_tally_brought_up_to_date_equals_a_count_from_the_start(
    client: TestClient, served: Served, engine: sa.Engine, window: str | None
) -> None:
    _endpoint(client, served, "history")
    rng = np.random.default_rng(11)
    start = datetime(2026, 6, 1, tzinfo=UTC)
    _insert(engine, served, _rows(rng, 300, start))
    tallies = Tallies()
    first, marks = _tallied(tallies, engine, window)
    assert first == _from_the_start(engine, window)
    assert marks.outcome == 0 and marks.seq > 0

    # New decisions, outcomes for old ones, then corrections of some of those outcomes: each
    # step counts only what changed, and still equals a count from the start.
    ids = _decision_ids(engine)
    _insert(engine, served, _rows(rng, 120, start + timedelta(days=40)))
    _record_outcomes(engine, [(d, str(int(rng.integers(0, 2)))) for d in ids[:150]])
    second, later = _tallied(tallies, engine, window)
    assert later.seq > marks.seq and later.outcome == 150
    assert second == _from_the_start(engine, window)
    assert second != first

    _record_outcomes(engine, [(d, "0") for d in ids[:40]] + [(d, "1") for d in ids[200:230]])
    third, _ = _tallied(tallies, engine, window)
    assert third == _from_the_start(engine, window)
    assert third != second  # the corrections moved error counts

    # Nothing new: the same counts, from the same marks.
    again, same = _tallied(tallies, engine, window)
    assert again == third and same.seq == _tallied(tallies, engine, window)[1].seq


def test_a_purge_or_a_replaced_log_counts_again_from_the_start(
    client: TestClient, served: Served, engine: sa.Engine
) -> None:
    _endpoint(client, served, "history")
    rng = np.random.default_rng(12)
    _insert(engine, served, _rows(rng, 200, datetime(2020, 1, 1, tzinfo=UTC)))
    _insert(engine, served, _rows(rng, 100, datetime.now(UTC) - timedelta(days=70)))
    tallies = Tallies()
    before, _ = _tallied(tallies, engine, None)
    assert not any(g.key[0] == "missing" for g in before[None])

    # Retention erases the context of the old decisions: their groups become "missing".
    summary = retention.apply(session_factory(engine), days=365)
    assert summary["purged"] == 200
    purged, marks = _tallied(tallies, engine, None)
    assert purged == _from_the_start(engine, None)
    assert sum(g.n for g in purged[None] if g.key[0] == "missing") == 200
    assert marks.purged > 0

    # The log is emptied and another written in its place, longer than the first: the record at
    # the old mark has another hash, so nothing of the old counts is kept.
    with engine.begin() as connection:
        connection.execute(DECISIONS.delete())
        connection.execute(sa.text("DELETE FROM chain_head"))
    _insert(engine, served, _rows(rng, 350, datetime.now(UTC) - timedelta(days=5)))
    replaced, _ = _tallied(tallies, engine, None)
    assert replaced == _from_the_start(engine, None)
    assert sum(g.n for g in replaced[None]) == 350


def test_the_report_says_where_its_counts_stop_and_keeps_up_through_the_api(
    client: TestClient, auth, served: Served, engine: sa.Engine
) -> None:
    _endpoint(client, served, "history")
    rng = np.random.default_rng(13)
    _insert(engine, served, _rows(rng, 80, datetime(2026, 9, 1, tzinfo=UTC)))
    params = {"endpoint": "history", "attribute": "sex"}
    headers = auth(Role.compliance)
    first = client.get("/api/v1/fairness", headers=headers, params=params).json()
    assert first["n"] == 80
    ids = _decision_ids(engine)
    written = client.post(
        "/api/v1/outcomes",
        headers=auth(Role.outcomes),
        json={
            "outcomes": [
                {"decision_id": d, "outcome": 1, "observed_at": datetime.now(UTC).isoformat()}
                for d in ids[:30]
            ]
        },
    )
    assert written.status_code == 201, written.text
    _insert(engine, served, _rows(rng, 20, datetime(2026, 10, 1, tzinfo=UTC)))
    second = client.get("/api/v1/fairness", headers=headers, params=params).json()
    assert second["n"] == 100 and second["with_outcomes"] == 30
    assert second["counted_to"]["seq"] == first["counted_to"]["seq"] + 20
    assert second["counted_to"]["outcome_id"] >= 30
    with engine.connect() as connection:
        top = connection.execute(sa.select(sa.func.max(DECISIONS.c.seq))).scalar_one()
    assert second["counted_to"]["seq"] == top
    # The app's tallies are those of its own engine: another engine starts empty.
    assert tallies_of(engine) is not tallies_of(client.app.state.engine)


def test_counts_combine_and_a_tally_keeps_a_bounded_number_of_reports(
    client: TestClient, served: Served, engine: sa.Engine
) -> None:
    _endpoint(client, served, "history")
    _insert(engine, served, _rows(np.random.default_rng(14), 50, datetime(2026, 9, 1, tzinfo=UTC)))
    counted = _from_the_start(engine, "month")
    doubled = combine(counted, counted)
    assert combine(doubled, counted, -1) == counted
    assert combine(counted, counted, -1) == {}
    with pytest.raises(ValueError, match="was not counted"):
        combine({}, counted, -1)

    tallies = Tallies(entries=2)
    with engine.connect() as connection:
        for window in ("day", "week", "month"):
            tallies.counts(connection, FILTERS, ATTRIBUTES, "1", window)
    assert [r.window for r in tallies._kept.keys_by_use()] == ["week", "month"]


def test_the_outcome_mark_waits_for_a_writer_in_flight(
    backend: str, client: TestClient, served: Served, engine: sa.Engine
) -> None:
    """On PostgreSQL an outcome id is handed out before commit; the settled mark waits for the
    writer, so an outcome is never left below a mark it was not counted in."""
    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time; its readers never see part of a write")
    _endpoint(client, served, "history")
    _insert(engine, served, _rows(np.random.default_rng(15), 3, datetime(2026, 9, 1, tzinfo=UTC)))
    decision_id = _decision_ids(engine)[0]
    marks: list[int] = []
    sessions = session_factory(engine)
    with transaction(sessions) as writer:
        [written] = outcomes.record_outcomes(
            writer,
            [(decision_id, outcomes.OutcomeIn(outcome=1, observed_at=datetime.now(UTC)))],
            actor="test",
            bulk=False,
        )

        def read() -> None:
            with engine.connect() as connection:
                marks.append(outcomes.settled_mark(connection))

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(1.0)
        assert reader.is_alive(), "the mark was read while an outcome was being written"
    reader.join(10)
    assert marks == [written.id]
