"""The typed decision payload hashes to exactly what the decision log held before it existed.

Each record below was written by the code the payload replaced (the untyped dicts of the former
serving/service.py, commit 83346c5), run through its real predict, shadow and reject paths; its
content hash is copied from the stored row. If ``chain_content`` drifted by one key or one value,
records already in a chain would stop verifying.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from core.audit.chain import canonical_json, content_hash
from core.errors import InvalidInput
from serving.decision_log import columns_of
from serving.payload import DecisionPayload, Outlier, ScoredBy

FEATURES = {
    "credit_history_months": 84,
    "debt_to_income": 0.31,
    "employment_years": 4.5,
    "housing": "rent",
    "income": 52000.0,
    "late_payments": 1,
    "loan_amount": 12000.0,
    "purpose": "car",
}
LIVE = ScoredBy(
    name="credit",
    version=1,
    sha256="cb882508d92824ff608aab87e563ca3ecbd4bccf5d4236122e662579565224a7",
)
SHADOW = ScoredBy(
    name="credit",
    version=2,
    sha256="921b04e090874a658f2790508d7c47b9cf5220219cbf63da79b59ae1211bdea7",
)
KEY = "908a923aed8d"

# Stored rows: (content hash, payload), as the former code wrote them.
DECISION = (
    "28b84de3ed790597ba79e7fc1ac811d68fd683a851e70b216c278d8b0a559aa7",
    '{"context":{"sex":"F"},"created_at":"2026-12-06T01:18:00.920433+00:00","decision_id":'
    '"f4160df5-5a5d-4cc2-bc9b-3c0fdea41d06","endpoint":"credit","features":{"credit_history_'
    'months":84,"debt_to_income":0.31,"employment_years":4.5,"housing":"rent","income":52000.0,'
    '"late_payments":1,"loan_amount":12000.0,"purpose":"car"},"is_outlier":false,"key_id":'
    '"908a923aed8d","kind":"decision","label":1,"latency_ms":991.079,"model":{"name":"credit",'
    '"sha256":"cb882508d92824ff608aab87e563ca3ecbd4bccf5d4236122e662579565224a7","version":1},'
    '"outlier_score":2.406406,"route":"live","score":0.6857605980650735,"subject_id":"s1"}',
)
SHADOW_DECISION = (
    "835d6f960d3a924286cad7c6a8f530eebda0eefa35bf2c573f72a1de50e3bb9b",
    '{"context":{"sex":"F"},"created_at":"2026-12-06T01:18:01.176940+00:00","decision_id":'
    '"be48f984-8740-4d4c-a205-36766c27b0f6","endpoint":"credit","features":{"credit_history_'
    'months":84,"debt_to_income":0.31,"employment_years":4.5,"housing":"rent","income":52000.0,'
    '"late_payments":1,"loan_amount":12000.0,"purpose":"car"},"is_outlier":false,"key_id":'
    '"908a923aed8d","kind":"shadow","label":1,"model":{"name":"credit","sha256":"921b04e090874'
    'a658f2790508d7c47b9cf5220219cbf63da79b59ae1211bdea7","version":2},"outlier_score":2.385375,'
    '"parent_decision_id":"f4160df5-5a5d-4cc2-bc9b-3c0fdea41d06","route":"shadow","score":'
    '0.5904493972746216,"subject_id":"s1"}',
)
REJECTED_INPUT = (
    "54c3b4d13e1cfa24677de39ed613f849575c697ffd71552bb08c24fc8972489c",
    '{"created_at":"2026-12-06T01:18:01.217276+00:00","decision_id":"dc194d0a-7127-40c8-acae-'
    '7445bb361bdd","endpoint":"credit","key_id":"908a923aed8d","kind":"rejected","reason":'
    '{"code":"invalid_input","details":[{"field":"features.income","message":"must be a number, '
    'got str"}],"message":"invalid input: features.income"},"request":{"features":{"credit_'
    'history_months":84,"debt_to_income":0.31,"employment_years":4.5,"housing":"rent","income":'
    '"abc","late_payments":1,"loan_amount":12000.0,"purpose":"car"}},"truncated":{"reason":'
    'false,"request":false}}',
)
REJECTED_BODY = (
    "6d8e746615c377477229f0a788b47a6c3014258fa04d67b65d458961139e9c86",
    '{"created_at":"2026-12-06T01:18:00.958512+00:00","decision_id":"137ffb56-9674-4f6c-bf30-'
    '45ebd97e3ece","endpoint":"credit","key_id":"908a923aed8d","kind":"rejected","reason":'
    '{"code":"invalid_input","details":[{"field":"","message":"Expecting value: line 1 column 1 '
    '(char 0)"}],"message":"the request body is not valid JSON"},"request":null,"truncated":'
    '{"reason":false,"request":false}}',
)
# Rejected by the former reject() with a reason and a body both over their bounds (the stored
# payload is 31,681 characters, so only its hash is kept here).
TRUNCATED_HASH = "8786ae29ffaa5ccd78860e4dc7620137d975a7a8e88ad80f11a91ce7d90e5a88"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _hash(payload: DecisionPayload) -> str:
    return content_hash(canonical_json(payload.chain_content()))


def _live() -> DecisionPayload:
    return DecisionPayload.decision(
        endpoint="credit",
        key_id=KEY,
        model=LIVE,
        route="live",
        subject_id="s1",
        features=dict(FEATURES),
        context={"sex": "F"},
        label=1,
        score=0.6857605980650735,
        outlier=Outlier(score=2.406406, is_outlier=False),
        latency_ms=991.0791234,
        decision_id="f4160df5-5a5d-4cc2-bc9b-3c0fdea41d06",
        created_at=_at("2026-12-06T01:18:00.920433+00:00"),
    )


def test_a_decision_hashes_as_the_former_code_wrote_it() -> None:
    stored_hash, stored = DECISION
    payload = _live()
    assert canonical_json(payload.chain_content()) == stored
    assert _hash(payload) == stored_hash


def test_a_shadow_decision_hashes_as_the_former_code_wrote_it() -> None:
    stored_hash, stored = SHADOW_DECISION
    payload = DecisionPayload.shadow(
        parent=_live(),
        model=SHADOW,
        label=1,
        score=0.5904493972746216,
        outlier=Outlier(score=2.385375, is_outlier=False),
        decision_id="be48f984-8740-4d4c-a205-36766c27b0f6",
        created_at=_at("2026-12-06T01:18:01.176940+00:00"),
    )
    assert canonical_json(payload.chain_content()) == stored
    assert _hash(payload) == stored_hash


@pytest.mark.parametrize(
    ("stored", "error", "body"),
    [
        (
            REJECTED_INPUT,
            InvalidInput(
                "invalid input: features.income",
                details=[{"field": "features.income", "message": "must be a number, got str"}],
            ),
            {"features": {**FEATURES, "income": "abc"}},
        ),
        (
            REJECTED_BODY,
            InvalidInput(
                "the request body is not valid JSON",
                details=[{"field": "", "message": "Expecting value: line 1 column 1 (char 0)"}],
            ),
            None,
        ),
    ],
)
def test_a_rejection_hashes_as_the_former_code_wrote_it(
    stored: tuple[str, str], error: InvalidInput, body: Any
) -> None:
    stored_hash, text = stored
    content = json.loads(text)
    payload = DecisionPayload.rejected(
        endpoint="credit",
        key_id=KEY,
        error=error,
        body=body,
        decision_id=content["decision_id"],
        created_at=_at(content["created_at"]),
    )
    assert canonical_json(payload.chain_content()) == text
    assert _hash(payload) == stored_hash


def test_a_rejection_cut_to_its_bounds_hashes_as_the_former_code_wrote_it() -> None:
    error = InvalidInput(
        "m" * 1200,
        details=[{"field": f"features.f{i}", "message": "x" * 300} for i in range(60)],
    )
    body = {"instances": [{"features": {f"f{i}": i for i in range(70)}, "subject_id": "s" * 400}]}
    payload = DecisionPayload.rejected(
        endpoint="credit",
        key_id="k3y",
        error=error,
        body={"instances": body["instances"] * 30},
        decision_id="c729e21f-299a-4b89-b973-d575efd69ce9",
        created_at=_at("2026-12-06T01:26:44.397936+00:00"),
    )
    assert payload.rejection is not None
    assert payload.rejection.truncated == {"reason": True, "request": True}
    assert _hash(payload) == TRUNCATED_HASH


# Shapes of content written by earlier versions: no outlier fields (before issue 7), a
# rejection without ``truncated`` (before issue 16).
LEGACY_DECISION = {
    "decision_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "kind": "decision",
    "created_at": "2026-11-28T14:00:00.000001+00:00",
    "endpoint": "credit",
    "key_id": "k",
    "model": {"name": "credit", "version": 1, "sha256": "0" * 64},
    "route": "live",
    "subject_id": None,
    "features": {"income": 1.0},
    "context": {},
    "label": "approve",
    "score": 0.5,
    "latency_ms": 3.5,
}
LEGACY_REJECTION = {
    "decision_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "kind": "rejected",
    "created_at": "2026-11-28T14:00:00+00:00",
    "endpoint": "credit",
    "key_id": "k",
    "reason": {"code": "invalid_input", "message": "m", "details": [{"field": "features"}]},
    "request": None,
}


@pytest.mark.parametrize(
    "content",
    [
        json.loads(DECISION[1]),
        json.loads(SHADOW_DECISION[1]),
        json.loads(REJECTED_INPUT[1]),
        json.loads(REJECTED_BODY[1]),
        LEGACY_DECISION,
        LEGACY_REJECTION,
    ],
)
def test_stored_content_reads_back_to_itself(content: dict[str, Any]) -> None:
    assert DecisionPayload.from_content(content).chain_content() == content


def test_the_columns_repeat_the_content() -> None:
    columns = columns_of(json.loads(SHADOW_DECISION[1]))
    assert columns == {
        "decision_id": "be48f984-8740-4d4c-a205-36766c27b0f6",
        "kind": "shadow",
        "created_at": _at("2026-12-06T01:18:01.176940+00:00"),
        "endpoint": "credit",
        "model": "credit",
        "version": 2,
        "artifact_sha256": SHADOW.sha256,
        "route": "shadow",
        "subject_id": "s1",
        "label": "1",
        "score": 0.5904493972746216,
        "parent_decision_id": "f4160df5-5a5d-4cc2-bc9b-3c0fdea41d06",
        "key_id": KEY,
        "context": {"sex": "F"},
        "features": FEATURES,
        "outlier_score": 2.385375,
        "is_outlier": False,
        "latency_ms": None,  # a shadow never answers
    }
    assert columns_of(json.loads(DECISION[1]))["latency_ms"] == 991.079
    rejected = columns_of(json.loads(REJECTED_BODY[1]))
    assert {k for k, v in rejected.items() if v is not None} == {
        "decision_id",
        "kind",
        "created_at",
        "endpoint",
        "key_id",
    }
    assert columns_of(LEGACY_DECISION)["outlier_score"] is None
    # Built or read back, a payload gives the same columns.
    assert _live().columns() == columns_of(_live().chain_content())


MISSING = object()


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("kind", "approved", ValueError),
        ("created_at", "yesterday", ValueError),
        ("model", {"name": "credit"}, TypeError),
        ("key_id", MISSING, KeyError),
    ],
)
def test_content_no_version_wrote_is_refused_as_verification_expects(
    key: str, value: Any, error: type[Exception]
) -> None:
    """Verification (governance.audit.verification) reports a row as altered when its content
    raises ValueError, KeyError or TypeError here."""
    content = json.loads(DECISION[1])
    if value is MISSING:
        del content[key]
    else:
        content[key] = value
    with pytest.raises(error):
        columns_of(content)
