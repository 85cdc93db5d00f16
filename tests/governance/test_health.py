from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from core.config import Settings
from governance.app import create_app
from tests.support.tcp_proxy import TcpProxy, closed_port


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_at_head(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_readyz_is_503_when_database_unreachable(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/test"
    settings = Settings(database_url=url, var_dir=tmp_path, environment="test")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert error["details"]["database"] == "unreachable"


def _wait_status(client: TestClient, expected: int, seconds: float = 15) -> int:
    deadline = time.monotonic() + seconds
    status = client.get("/readyz").status_code
    while status != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.get("/readyz").status_code
    return status


def test_readyz_recovers_when_database_returns(
    backend: str, migrated_url: str, tmp_path: Path
) -> None:
    if backend != "postgresql":
        pytest.skip("an embedded SQLite database cannot go away; this is a server test")
    upstream = sa.make_url(migrated_url)
    proxy = TcpProxy(upstream.host or "127.0.0.1", upstream.port or 5432)
    url = upstream.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(database_url=url, var_dir=tmp_path, environment="test")
    proxy.up()
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            assert client.get("/readyz").status_code == 200
            proxy.down()
            assert _wait_status(client, 503) == 503
            proxy.up()
            assert _wait_status(client, 200) == 200
    finally:
        proxy.down()
