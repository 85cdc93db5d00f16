from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from core.auth.models import Role


def _assert_shape(body: dict, code: str) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_unknown_route_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    _assert_shape(response.json(), "not_found")


def test_wrong_method_is_405(client: TestClient) -> None:
    response = client.put("/healthz")
    assert response.status_code == 405
    _assert_shape(response.json(), "method_not_allowed")
    assert "GET" in response.headers["allow"]


def test_malformed_json_is_422(client: TestClient, auth) -> None:
    response = client.post(
        "/api/v1/keys",
        headers={**auth(Role.admin), "Content-Type": "application/json"},
        content=b'{"name": "x", "role":',
    )
    assert response.status_code == 422
    _assert_shape(response.json(), "invalid_input")
    assert "not valid JSON" in response.json()["error"]["message"]


def test_validation_error_names_each_field(client: TestClient, auth) -> None:
    response = client.post(
        "/api/v1/keys", headers=auth(Role.admin), json={"name": "", "expires_in_days": 0}
    )
    assert response.status_code == 422
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert fields == {"name", "role", "expires_in_days"}


def test_oversized_body_with_length_is_413(client: TestClient, auth, settings) -> None:
    body = b"x" * (settings.max_body_bytes + 1)
    response = client.post(
        "/api/v1/keys",
        headers={**auth(Role.admin), "Content-Type": "application/json"},
        content=body,
    )
    assert response.status_code == 413
    _assert_shape(response.json(), "payload_too_large")


def test_oversized_chunked_body_is_413(client: TestClient, auth, settings) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b" " * 65536

    response = client.post(
        "/api/v1/keys",
        headers={**auth(Role.admin), "Content-Type": "application/json"},
        content=chunks(),
    )
    assert response.status_code == 413
    _assert_shape(response.json(), "payload_too_large")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/docs", "/openapi.json"])
def test_public_pages_need_no_key(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200
