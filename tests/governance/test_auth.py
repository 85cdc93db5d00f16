from __future__ import annotations

import base64
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from core.auth import cache as auth_cache
from core.auth import service as auth_service
from core.auth.models import ApiKey, Role
from core.config import Settings
from core.db import session_factory, transaction, utcnow
from core.deps import PublicRoute, RoleGuard
from tests.conftest import KeyMaker

NON_ADMIN = [r for r in Role if r is not Role.admin]


def test_no_key_is_401_with_challenge(client: TestClient) -> None:
    response = client.get("/api/v1/whoami")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "header",
    ["Bearer nonsense", "Bearer gov_abc_def", "Basic Zm9vOmJhcg==", "Bearer gov__x"],
)
def test_bad_keys_are_401(client: TestClient, header: str) -> None:
    response = client.get("/api/v1/whoami", headers={"Authorization": header})
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_a_forged_secret_for_a_real_key_id_is_401(client: TestClient, make_key: KeyMaker) -> None:
    key = make_key(Role.admin)
    prefix, key_id, secret = key.split("_", 2)
    forged = f"{prefix}_{key_id}_{secret[::-1]}"
    assert (
        client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    )
    response = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


@pytest.mark.parametrize("role", list(Role))
def test_every_role_is_recognised(client: TestClient, auth, role: Role) -> None:
    response = client.get("/api/v1/whoami", headers=auth(role))
    assert response.status_code == 200
    assert response.json()["role"] == role.value


@pytest.mark.parametrize("role", NON_ADMIN)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/keys", None),
        ("POST", "/api/v1/keys", {"name": "x", "role": "predictor"}),
        ("DELETE", "/api/v1/keys/abc", None),
    ],
)
def test_non_admin_roles_are_403_on_key_management(
    client: TestClient, auth, role: Role, method: str, path: str, body: dict | None
) -> None:
    response = client.request(method, path, headers=auth(role), json=body)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    assert error["details"]["role"] == role.value
    assert error["details"]["allowed_roles"] == ["admin"]


def test_admin_manages_keys_and_secrets_are_not_stored(
    client: TestClient, auth, engine: sa.Engine
) -> None:
    admin = auth(Role.admin)
    created = client.post("/api/v1/keys", headers=admin, json={"name": "bob", "role": "compliance"})
    assert created.status_code == 201
    body = created.json()
    token = body["key"]
    _, key_id, secret = token.split("_", 2)
    assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) >= 32

    listing = client.get("/api/v1/keys", headers=admin).json()
    assert body["key_id"] in {k["key_id"] for k in listing["data"]}
    assert all("key" not in k for k in listing["data"])
    assert token not in client.get("/api/v1/keys", headers=admin).text

    # No column of any stored key holds the plaintext or its secret part.
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ApiKey.__table__)).mappings().all()
    stored = " ".join(str(v) for row in rows for v in row.values())
    assert secret not in stored
    assert token not in stored
    assert key_id in stored

    whoami = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert whoami.json() == {
        "key_id": key_id,
        "name": "bob",
        "role": "compliance",
        "expires_at": None,
    }


def test_revoked_key_stops_working_at_once(client: TestClient, auth, make_key: KeyMaker) -> None:
    token = make_key(Role.predictor)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/whoami", headers=headers).status_code == 200
    key_id = token.split("_", 2)[1]

    revoked = client.delete(f"/api/v1/keys/{key_id}", headers=auth(Role.admin))
    assert revoked.status_code == 200
    assert revoked.json()["active"] is False

    response = client.get("/api/v1/whoami", headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_revoking_unknown_key_is_404(client: TestClient, auth) -> None:
    response = client.delete("/api/v1/keys/doesnotexist", headers=auth(Role.admin))
    assert response.status_code == 404
    assert "doesnotexist" in response.json()["error"]["message"]


def test_expired_key_fails(
    client: TestClient, make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = make_key(Role.compliance, expires_in_days=1)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/whoami", headers=headers).status_code == 200
    # Two days on (the clock moved, not the test's wall time: a loaded machine cannot make this
    # flaky). The key is still in the cache; its expiry is checked anyway.
    later = utcnow() + timedelta(days=2)
    monkeypatch.setattr(auth_cache, "utcnow", lambda: later)
    monkeypatch.setattr(auth_service, "utcnow", lambda: later)
    response = client.get("/api/v1/whoami", headers=headers)
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_a_key_revoked_elsewhere_stops_working_within_the_cache_ttl(
    client: TestClient, make_key: KeyMaker, engine: sa.Engine, settings: Settings
) -> None:
    """Revoked through another process (the CLI, another worker): this process trusts its
    cached check for at most GOV_AUTH_CACHE_TTL_S."""
    token = make_key(Role.compliance)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/whoami", headers=headers).status_code == 200
    with transaction(session_factory(engine)) as session:
        auth_service.revoke_key(session=session, key_id=token.split("_", 2)[1], revoked_by="cli")
    time.sleep(settings.auth_cache_ttl_s + 0.1)
    assert client.get("/api/v1/whoami", headers=headers).status_code == 401


def test_concurrent_checks_of_one_key_read_the_database_once() -> None:
    import asyncio
    import threading

    from core.auth.cache import KeyCache
    from core.auth.schemas import Principal
    from core.errors import Unauthorized

    calls: list[str] = []
    gate = threading.Event()

    def authenticate(token: str) -> Principal:
        calls.append(token)
        gate.wait(5)
        if token == "bad":
            raise Unauthorized("invalid API key")
        return Principal(key_id="k", name="n", role=Role.predictor)

    cache = KeyCache(authenticate, ttl_s=60)

    async def burst() -> list[object]:
        tasks = [asyncio.create_task(cache.principal(t)) for t in ["good"] * 20 + ["bad"] * 20]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(burst())
    assert sorted(calls) == ["bad", "good"]  # one read per token, however many asked
    assert all(isinstance(r, Principal) for r in results[:20])
    assert all(isinstance(r, Unauthorized) for r in results[20:])
    asyncio.run(cache.principal("good"))
    assert calls.count("good") == 1  # kept for the TTL; refusals are not kept
    cache.forget("k")
    asyncio.run(cache.principal("good"))
    assert calls.count("good") == 2


def test_create_key_validates_role(client: TestClient, auth) -> None:
    response = client.post(
        "/api/v1/keys", headers=auth(Role.admin), json={"name": "x", "role": "root"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "role"


def _guards(route: Any) -> list[object]:
    found: list[object] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if isinstance(dep.call, RoleGuard | PublicRoute):
            found.append(dep.call)
        stack.extend(dep.dependencies)
    return found


def test_every_route_declares_its_roles(app: FastAPI) -> None:
    """A new route without a role declaration (or an explicit `public`) fails here."""
    routes = [c for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]
    assert routes
    undeclared = [f"{sorted(r.methods or [])} {r.path}" for r in routes if not _guards(r)]
    assert undeclared == []
    api_routes = [r for r in routes if r.path.startswith("/api/")]
    assert all(any(isinstance(g, RoleGuard) for g in _guards(r)) for r in api_routes)
