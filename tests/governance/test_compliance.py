"""Decision queries, exports and the access trail, over real decisions from real models."""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from core.auth.models import Role
from tests.conftest import Served
from tests.support.factories import applicant, promote

DECISIONS = "/api/v1/decisions"


def _predict(client: TestClient, headers: dict[str, str], endpoint: str, **body: Any) -> Any:
    response = client.post(f"/api/v1/endpoints/{endpoint}/predict", headers=headers, json=body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def book(client: TestClient, auth: Any, served: Served) -> list[dict[str, Any]]:
    """18 decisions on two endpoints and versions, 2 outliers, 4 with an outcome."""
    admin = served.headers
    promote(client, admin, "credit", served.versions[1])
    response = client.put(
        "/api/v1/endpoints/credit-b",
        headers=admin,
        json={"routes": [{"model": "credit", "version": served.versions[1]}]},
    )
    assert response.status_code == 200, response.text
    predictor = auth(Role.predictor)
    made = []
    for i in range(18):
        endpoint = "credit" if i < 12 else "credit-b"
        features = applicant(income=30_000.0 + 4_000 * i, debt_to_income=0.1 + 0.03 * (i % 10))
        if i in (3, 14):
            features = applicant(income=9_000_000.0, late_payments=90)
        decision = _predict(
            client,
            predictor,
            endpoint,
            subject_id=f"s{i % 9}",
            features=features,
            context={"sex": "F" if i % 2 else "M", "age": 30 + i},
        )
        made.append({**decision, "subject_id": f"s{i % 9}", "outlier": i in (3, 14)})
    outcomes = auth(Role.outcomes)
    for decision in made[:4]:
        recorded = client.post(
            f"/api/v1/decisions/{decision['decision_id']}/outcome",
            headers=outcomes,
            json={"outcome": "1", "observed_at": datetime.now(UTC).isoformat()},
        )
        assert recorded.status_code == 201, recorded.text
    return made


def _all(client: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 5, **({"cursor": cursor} if cursor is not None else {})}
        response = client.get(DECISIONS, headers=headers, params=query)
        assert response.status_code == 200, response.text
        rows += response.json()["data"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return rows


def test_every_filter_and_their_combinations_select_exactly_the_matching_decisions(
    client: TestClient, auth: Any, served: Served, book: list[dict[str, Any]]
) -> None:
    headers = auth(Role.compliance)
    first = book[0]
    checks: dict[str, tuple[Any, Any]] = {
        "endpoint": ("credit-b", lambda d: d["endpoint"] == "credit-b"),
        "model": ("credit", lambda d: True),
        "version": (served.versions[1], lambda d: d["model"]["version"] == served.versions[1]),
        "route": ("live", lambda d: d["route"] == "live"),
        "subject_id": ("s3", lambda d: d["subject_id"] == "s3"),
        "label": (str(first["label"]), lambda d: str(d["label"]) == str(first["label"])),
        "outlier": (True, lambda d: d["outlier"]),
        "has_outcome": (True, lambda d: d in book[:4]),
        "since": (first["created_at"], lambda d: d["created_at"] >= first["created_at"]),
        "until": (book[5]["created_at"], lambda d: d["created_at"] < book[5]["created_at"]),
    }
    names = list(checks)
    # Every filter alone, every pair, every triple, and all of them at once.
    combos = [c for size in (1, 2, 3) for c in itertools.combinations(names, size)]
    combos.append(tuple(names))
    for combo in combos:
        params = {name: checks[name][0] for name in combo}
        expected = [d["decision_id"] for d in book if all(checks[n][1](d) for n in combo)]
        got = [r["decision_id"] for r in _all(client, headers, **params)]
        assert got == expected, (combo, params)
    for value, expected_rows in ((False, 16), (True, 2)):
        assert len(_all(client, headers, outlier=value)) == expected_rows
    assert len(_all(client, headers, has_outcome=False)) == 14
    bad = client.get(
        DECISIONS,
        headers=headers,
        params={"since": book[5]["created_at"], "until": first["created_at"]},
    )
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "since"
    wrong = client.get(DECISIONS, headers=headers, params={"version": "x", "kind": "maybe"})
    assert wrong.status_code == 422
    fields = {d["field"] for d in wrong.json()["error"]["details"]}
    assert {"version", "kind"} <= fields


def test_pages_return_every_row_exactly_once_while_decisions_keep_arriving(
    client: TestClient, auth: Any, book: list[dict[str, Any]]
) -> None:
    headers = auth(Role.compliance)
    predictor = auth(Role.predictor)
    seen: list[str] = []
    cursor = None
    arrived = []
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor is not None else {})}
        body = client.get(DECISIONS, headers=headers, params=params).json()
        seen += [r["decision_id"] for r in body["data"]]
        cursor = body["next_cursor"]
        if len(arrived) < 6:
            arrived.append(
                _predict(client, predictor, "credit", features=applicant())["decision_id"]
            )
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert {d["decision_id"] for d in book} <= set(seen)
    assert set(seen) <= {d["decision_id"] for d in book} | set(arrived)
    # everything that arrived while paging is after the rows that were there
    assert seen[: len(book)] == [d["decision_id"] for d in book]


def test_csv_and_parquet_exports_equal_the_json_query(
    client: TestClient, auth: Any, book: list[dict[str, Any]]
) -> None:
    headers = auth(Role.compliance)
    params: dict[str, Any] = {"endpoint": "credit", "outlier": False}
    rows = _all(client, headers, **params)
    assert len(rows) == 11
    exported = client.get(DECISIONS, headers={**headers, "Accept": "text/csv"}, params=params)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["decision_id"] for r in table] == [r["decision_id"] for r in rows]
    assert [r["label"] for r in table] == [str(r["label"]) for r in rows]
    assert [float(r["score"]) for r in table] == [r["score"] for r in rows]
    for written, row in zip(table, rows, strict=True):
        # PostgreSQL exports through COPY, SQLite through Python: the same text either way
        assert datetime.fromisoformat(written["created_at"]) == datetime.fromisoformat(
            row["created_at"].replace("Z", "+00:00")
        )
        assert written["is_outlier"] == str(row["is_outlier"]) and written["purged"] == "False"
        assert json.loads(written["features"]) == row["features"]
        assert json.loads(written["context"]) == row["context"]
        assert written["subject_id"] == row["subject_id"] and written["route"] == "live"
    parquet = client.get(DECISIONS, headers=headers, params={**params, "format": "parquet"})
    assert parquet.status_code == 200
    frame = pq.read_table(io.BytesIO(parquet.content)).to_pandas()
    assert list(frame["decision_id"]) == [r["decision_id"] for r in rows]
    assert list(frame["score"]) == [r["score"] for r in rows]

    # The latest outcome travels with each row, in every format; a label is the model's class,
    # the same type the query and the lookup give (the demo's classes are the integers 0 and 1).
    with_outcome = {d["decision_id"] for d in book[:4]}
    assert {r["decision_id"] for r in rows if r["outcome"] is not None} == with_outcome & {
        r["decision_id"] for r in rows
    }
    assert [w["outcome"] or None for w in table] == [r["outcome"] for r in rows]
    assert [bool(w["outcome_observed_at"]) for w in table] == [
        r["outcome_observed_at"] is not None for r in rows
    ]
    assert list(frame["outcome"].where(frame["outcome"].notna(), None)) == [
        r["outcome"] for r in rows
    ]
    assert {type(r["label"]) for r in rows} == {int}
    single = client.get(f"/api/v1/decisions/{rows[0]['decision_id']}", headers=headers).json()
    assert single["label"] == rows[0]["label"]
    assert type(single["label"]) is type(rows[0]["label"])

    trail = client.get(
        "/api/v1/audit/access-log", headers=headers, params={"action": "decisions.export"}
    )
    exports = trail.json()["data"]
    assert [(e["params"]["format"], e["rows"]) for e in exports] == [("parquet", 11), ("csv", 11)]
    assert exports[0]["params"]["endpoint"] == "credit" and exports[0]["params"]["outlier"] is False


@pytest.mark.parametrize("role", [Role.appeals, Role.predictor, Role.data_scientist, Role.outcomes])
def test_listing_and_the_trail_are_refused_to_other_roles(
    client: TestClient, auth: Any, role: Role
) -> None:
    headers = auth(role)
    assert client.get(DECISIONS, headers=headers).status_code == 403
    assert client.get(DECISIONS, headers=headers, params={"format": "csv"}).status_code == 403
    assert client.get("/api/v1/audit/access-log", headers=headers).status_code == 403


def test_the_access_trail_records_every_kind_of_read_with_its_row_count(
    client: TestClient, auth: Any, book: list[dict[str, Any]]
) -> None:
    compliance = auth(Role.compliance)
    decision_id = book[0]["decision_id"]
    reads = [
        ("decision.read", f"/api/v1/decisions/{decision_id}", {}),
        ("explanation.reasons", f"/api/v1/decisions/{decision_id}/reasons", {}),
        ("explanation.shap", f"/api/v1/decisions/{decision_id}/explanations/shap", {}),
        ("outcome.read", f"/api/v1/decisions/{decision_id}/outcomes", {}),
        ("fairness.report", "/api/v1/fairness", {"endpoint": "credit", "attribute": "sex"}),
        ("decisions.query", DECISIONS, {"endpoint": "credit-b"}),
    ]
    for _action, path, params in reads:
        response = client.get(path, headers=compliance, params=params)
        assert response.status_code == 200, (path, response.text)
    replay = client.post(f"/api/v1/decisions/{decision_id}/replay", headers=compliance, json={})
    assert replay.status_code == 200, replay.text
    entries = client.get(
        "/api/v1/audit/access-log", headers=compliance, params={"limit": 100}
    ).json()
    by_action = {e["action"]: e for e in reversed(entries["data"])}
    for action, _path, _params in reads:
        assert action in by_action, (action, sorted(by_action))
    assert by_action["decision.read"]["target"] == decision_id
    assert by_action["decisions.query"]["rows"] == 6
    assert by_action["decisions.query"]["params"]["endpoint"] == "credit-b"
    assert by_action["fairness.report"]["rows"] == 12
    assert "replay" in by_action and by_action["replay"]["target"] == decision_id
    assert by_action["outcome.read"]["rows"] == 1
    keys = {e["key_id"] for e in entries["data"]}
    assert len(keys) == 1 and {e["role"] for e in entries["data"]} == {"compliance"}
    verify = client.get("/api/v1/audit/verify", headers=compliance).json()
    assert verify["ok"] is True


def test_a_time_window_finds_records_committed_out_of_time_order(
    client: TestClient, auth: Any, engine: Any
) -> None:
    """seq follows commit order, created_at is stamped earlier: near a window's edges the two
    disagree by up to the commit lag, and the window must still hold exactly its records."""
    import uuid
    from datetime import timedelta

    from core.audit import ledger
    from core.db import session_factory, transaction
    from serving.decision_log import CHAIN, columns_of
    from serving.models import DecisionRecord

    start = datetime(2026, 1, 1, tzinfo=UTC)
    stamps = [start + timedelta(hours=6 * i) for i in range(400)]  # 100 days
    # Commit order differs from stamp order by up to a few minutes, as under load.
    for i in range(0, 398, 7):
        stamps[i], stamps[i + 1] = stamps[i + 1] + timedelta(minutes=3), stamps[i]
    contents = [
        {
            "decision_id": str(uuid.uuid4()),
            "kind": "decision",
            "created_at": at.isoformat(),
            "endpoint": "window",
            "key_id": "test",
            "model": {"name": "m", "version": 1, "sha256": "0" * 64},
            "route": "live",
            "subject_id": None,
            "features": {},
            "context": {},
            "label": 1,
            "score": 0.5,
        }
        for at in stamps
    ]
    with transaction(session_factory(engine)) as session:
        ledger.append(
            session,
            chain=CHAIN,
            table=DecisionRecord.__table__,
            contents=contents,
            columns_of=columns_of,
        )
    headers = auth(Role.compliance)
    for since_day, until_day in ((10, 40), (0, 1), (33, 34), (95, 120)):
        since = start + timedelta(days=since_day, minutes=1)
        until = start + timedelta(days=until_day, hours=6)
        expected = [
            c["decision_id"]
            for c in contents
            if since <= datetime.fromisoformat(c["created_at"]) < until
        ]
        params = {"endpoint": "window", "since": since.isoformat(), "until": until.isoformat()}
        got = [r["decision_id"] for r in _all(client, headers, **params)]
        assert got == expected, (since_day, until_day)
        exported = client.get(DECISIONS, headers=headers, params={**params, "format": "csv"})
        assert [r["decision_id"] for r in csv.DictReader(io.StringIO(exported.text))] == expected
