"""Regressions for what the reliability drills found: each of these answered 500 on PostgreSQL
(or 503 for every request batched with it), and must be a 422 that names the field."""

from __future__ import annotations

import json

import sqlalchemy as sa
from fastapi.testclient import TestClient

from core.auth.models import Role
from core.text import HOLDS_NUL, HOLDS_SURROGATE, find_bad_text
from serving.models import DecisionRecord
from tests.conftest import Served
from tests.support.factories import applicant

NUL_MESSAGE = "must not contain a NUL (\\u0000) character"


def _field(response) -> str:
    assert response.status_code == 422, response.text
    (detail,) = response.json()["error"]["details"]
    assert detail["message"] == NUL_MESSAGE
    return str(detail["field"])


def test_find_bad_text_names_the_path_and_the_problem() -> None:
    assert find_bad_text({"a": [{"b": "ok"}, {"c": "x\x00"}]}) == ("a.1.c", HOLDS_NUL)
    assert find_bad_text({"k\x00": 1}) == ("k\\u0000", HOLDS_NUL)
    assert find_bad_text({"a": "\\u0000 is only text here"}) is None
    assert find_bad_text({"s": ["ok", "lone \ud800"]}) == ("s.1", HOLDS_SURROGATE)
    assert find_bad_text({"k\udfff": 1}) == ("k\\udfff", HOLDS_SURROGATE)
    assert find_bad_text({"emoji": "\U0001f600", "cjk": "\u4e2d"}) is None
    deep: object = "x\x00"
    for _ in range(50_000):  # iterative: no recursion limit
        deep = [deep]
    found = find_bad_text(deep)
    assert found is not None
    field, _problem = found
    assert field.startswith("0.0.0.") and len(field) <= 201  # bounded when echoed


def test_nul_in_a_query_filter_is_refused_naming_it(client: TestClient, auth) -> None:
    response = client.get(
        "/api/v1/decisions", params={"subject_id": "a\x00b"}, headers=auth(Role.compliance)
    )
    assert _field(response) == "subject_id"


def test_nul_in_a_json_body_is_refused_naming_the_field(client: TestClient, auth) -> None:
    response = client.post(
        "/api/v1/keys", headers=auth(Role.admin), json={"name": "evil\x00", "role": "appeals"}
    )
    assert _field(response) == "name"
    listed = client.get("/api/v1/keys", headers=auth(Role.admin)).json()
    names = [k["name"] for k in (listed["data"] if isinstance(listed, dict) else listed)]
    assert not any("evil" in n for n in names)


def test_escaped_backslash_before_u0000_is_plain_text(client: TestClient, auth) -> None:
    # The JSON text "a\\u0000" decodes to a backslash and "u0000": no NUL, so it is accepted.
    response = client.post(
        "/api/v1/keys",
        headers={**auth(Role.admin), "Content-Type": "application/json"},
        content=b'{"name": "a\\\\u0000", "role": "appeals"}',
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "a\\u0000"


def test_nul_in_predict_is_refused_and_logs_nothing(
    client: TestClient, auth, served: Served, engine: sa.Engine
) -> None:
    response = client.post(
        "/api/v1/endpoints/credit/predict",
        headers=auth(Role.predictor),
        json={
            "instances": [
                {"features": applicant()},
                {"subject_id": "a\x00", "features": applicant()},
            ]
        },
    )
    assert _field(response) == "instances.1.subject_id"
    with engine.connect() as conn:
        logged = conn.execute(sa.select(sa.func.count()).select_from(DecisionRecord.__table__))
        assert logged.scalar_one() == 0
    ok = client.post(
        "/api/v1/endpoints/credit/predict",
        headers=auth(Role.predictor),
        json={"subject_id": "fine", "features": applicant()},
    )
    assert ok.status_code == 200, ok.text


def test_yaml_spec_nesting_and_nul_escapes_are_refused(client: TestClient, auth) -> None:
    headers = {**auth(Role.data_scientist), "Content-Type": "application/yaml"}
    deep = client.post("/api/v1/runs", headers=headers, content=b"[" * 100_000 + b"]" * 100_000)
    assert deep.status_code == 422, deep.text
    assert "nested too deeply" in deep.json()["error"]["message"]
    nul = client.post(
        "/api/v1/runs", headers=headers, content=b'model: credit\ndescription: "a\\0b"\n'
    )
    assert _field(nul) == "description"


def test_row_ids_and_cursors_beyond_the_column_range_are_422(client: TestClient, auth) -> None:
    headers = auth(Role.data_scientist)
    for path in (
        "/api/v1/runs/2147483648",
        "/api/v1/datasets/99999999999",
        "/api/v1/rebuilds/2147483648",
        "/api/v1/datasets?cursor=2147483648",
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 422, (path, response.text)
    inside = client.get("/api/v1/runs/2147483647", headers=headers)
    assert inside.status_code == 404
    # Decision pages are keyed by the 64-bit sequence number: a large cursor is fine.
    page = client.get("/api/v1/decisions", params={"cursor": 2**40}, headers=auth(Role.compliance))
    assert page.status_code == 200 and page.json()["count"] == 0


def test_malformed_exported_checkpoint_is_422(client: TestClient, auth) -> None:
    response = client.post(
        "/api/v1/audit/verify",
        headers=auth(Role.compliance),
        json={"checkpoints": [{"chain": "decision", "seq": 1, "signature": "x"}]},
    )
    assert response.status_code == 422, response.text
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert {"checkpoints.0.record_hash", "checkpoints.0.signed_at"} <= fields


def test_openapi_documents_the_real_error_body(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in json.dumps(spec)
    error = {"$ref": "#/components/schemas/Error"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for code in ("422", "4XX", "503"):
                schema = operation["responses"][code]["content"]["application/json"]["schema"]
                assert schema == error, (method, path, code)
    assert "text/plain" in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    body = client.get("/api/v1/decisions").json()  # a real 401 has the documented shape
    assert set(body) == set(spec["components"]["schemas"]["Error"]["required"])
