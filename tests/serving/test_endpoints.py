from __future__ import annotations

from fastapi.testclient import TestClient

from core.auth.models import Role
from tests.conftest import Served
from tests.support.factories import applicant, cached_model


def test_configuration_changes_are_kept_with_who_and_when(
    client: TestClient, auth, served: Served
) -> None:
    ds = auth(Role.data_scientist)
    v1, v2 = served.versions
    canary = {
        "routes": [
            {"model": "credit", "version": v1, "weight": 9},
            {"model": "credit", "version": v2, "weight": 1},
        ]
    }
    response = client.put("/api/v1/endpoints/credit", headers=ds, json=canary)
    assert response.status_code == 200
    body = response.json()
    assert [r["name"] for r in body["config"]["routes"]] == ["live", "canary"]
    assert len(body["history"]) == 2
    first, second = body["history"]
    assert first["old"] is None
    assert second["old"] == first["new"]
    assert second["new"]["routes"][1]["version"] == v2
    assert second["by"] == client.get("/api/v1/whoami", headers=ds).json()["key_id"]
    assert client.get("/api/v1/endpoints/credit", headers=auth(Role.compliance)).json() == body
    assert client.get("/api/v1/endpoints", headers=ds).json() == ["credit"]


def test_only_admins_and_data_scientists_change_endpoints(
    client: TestClient, auth, served: Served
) -> None:
    config = {"routes": [{"model": "credit", "version": served.versions[0]}]}
    for role in (Role.compliance, Role.appeals, Role.predictor):
        assert (
            client.put("/api/v1/endpoints/credit", headers=auth(role), json=config).status_code
            == 403
        )
    for role in (Role.appeals, Role.predictor):
        assert client.get("/api/v1/endpoints/credit", headers=auth(role)).status_code == 403


def test_bad_configurations_name_the_field(client: TestClient, auth, served: Served) -> None:
    ds = auth(Role.data_scientist)
    cases = [
        ({"routes": [{"model": "credit", "version": 99}]}, "routes.0"),
        (
            {
                "routes": [{"model": "credit", "version": 1}],
                "shadows": [{"model": "nope", "version": 1}],
            },
            "shadows.0",
        ),
        ({"routes": []}, "routes"),
        ({"routes": [{"model": "credit", "version": 1, "weight": 0}]}, "routes.0.weight"),
        ({"routes": [{"model": "credit", "version": 1}], "extra": 1}, "extra"),
    ]
    for config, field in cases:
        response = client.put("/api/v1/endpoints/credit", headers=ds, json=config)
        assert response.status_code == 422, (config, response.text)
        assert field in [d["field"] for d in response.json()["error"]["details"]], response.text
    assert client.get("/api/v1/endpoints/nope", headers=ds).status_code == 404


def test_archived_versions_cannot_serve(client: TestClient, auth, served: Served) -> None:
    ds = auth(Role.data_scientist)
    v2 = served.versions[1]
    archived = client.post(
        f"/api/v1/models/credit/versions/{v2}/stage",
        headers=ds,
        json={"stage": "archived", "reason": "retired"},
    )
    assert archived.status_code == 201
    response = client.put(
        "/api/v1/endpoints/credit",
        headers=ds,
        json={"routes": [{"model": "credit", "version": v2}]},
    )
    assert response.status_code == 409
    assert "archived" in response.json()["error"]["details"][0]["message"]
    shadow = client.put(
        "/api/v1/endpoints/credit",
        headers=ds,
        json={
            "routes": [{"model": "credit", "version": served.versions[0]}],
            "shadows": [{"model": "credit", "version": v2}],
        },
    )
    assert shadow.status_code == 409, shadow.text


def test_a_version_that_failed_its_gate_never_answers_traffic(
    client: TestClient, auth, served: Served, settings, data_repo
) -> None:
    """Issue 16: promotion of a failed version was refused, but a route to it was accepted and
    served live traffic."""
    failed = cached_model(
        settings, data_repo, seed=9, gate={"metric": "roc_auc", "threshold": 0.999}
    )
    ds = auth(Role.data_scientist)
    v1 = served.versions[0]
    live = {"routes": [{"model": "credit", "version": failed}]}
    canary = {
        "routes": [
            {"model": "credit", "version": v1, "weight": 99},
            {"model": "credit", "version": failed, "weight": 1},
        ]
    }
    for config, field in ((live, "routes.0"), (canary, "routes.1")):
        response = client.put("/api/v1/endpoints/credit", headers=ds, json=config)
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        [problem] = error["details"]
        assert problem["field"] == field
        assert problem["version"] == failed
        assert "failed its promotion gate" in problem["rule"]
        assert f"credit v{failed}" in error["message"]
    # Scored and logged, never answered: a shadow may be any version that is not archived.
    shadowed = {
        "routes": [{"model": "credit", "version": v1}],
        "shadows": [dict(live["routes"][0])],
    }
    assert client.put("/api/v1/endpoints/credit", headers=ds, json=shadowed).status_code == 200
    served_versions = {
        client.post(
            "/api/v1/endpoints/credit/predict",
            headers=auth(Role.predictor),
            json={"features": applicant()},
        ).json()["model"]["version"]
        for _ in range(5)
    }
    assert served_versions == {v1}


def test_the_live_route_needs_a_version_in_production(
    client: TestClient, auth, served: Served
) -> None:
    ds = auth(Role.data_scientist)
    v1, v2 = served.versions  # v2 passed its gate but has no stage
    response = client.put(
        "/api/v1/endpoints/credit",
        headers=ds,
        json={"routes": [{"model": "credit", "version": v2}]},
    )
    assert response.status_code == 409
    assert "must point at a version in production" in response.json()["error"]["message"]
    canary = {
        "routes": [
            {"model": "credit", "version": v1, "weight": 9},
            {"model": "credit", "version": v2, "weight": 1},
        ]
    }
    assert client.put("/api/v1/endpoints/credit", headers=ds, json=canary).status_code == 200
    swapped = {"routes": list(reversed(canary["routes"]))}
    assert client.put("/api/v1/endpoints/credit", headers=ds, json=swapped).status_code == 409


def test_warm_loads_every_routed_and_shadowed_model_and_survives_a_bad_one(
    client: TestClient, auth, served: Served, settings
) -> None:
    from lineage.artifacts import ArtifactStore
    from lineage.models import ModelVersion

    v1, v2 = served.versions
    response = client.put(
        "/api/v1/endpoints/credit",
        headers=served.headers,
        json={
            "routes": [{"model": "credit", "version": v1}],
            "shadows": [{"model": "credit", "version": v2}],
        },
    )
    assert response.status_code == 200, response.text
    serving = client.app.state.serving
    assert serving.models.by_version("credit", v1) is None  # nothing loaded before traffic
    assert serving.warm() == 2
    assert serving.models.by_version("credit", v1) is not None
    assert serving.models.by_version("credit", v2) is not None

    # A fresh process, with v2's artifact altered on disk: v1 still loads, v2 is refused.
    from governance.app import create_app

    with client.app.state.sessions() as session:
        sha = session.query(ModelVersion).filter_by(version=v2).one().artifact_sha256
    path = ArtifactStore(settings.artifacts).path_for(sha)
    original = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(original[:-8] + b"\0" * 8)
    try:
        fresh_app = create_app(settings)
        fresh = fresh_app.state.serving
        assert fresh.warm() == 1
        assert fresh.models.by_version("credit", v1) is not None
        assert fresh.models.by_version("credit", v2) is None
    finally:
        path.write_bytes(original)
        fresh_app.state.engine.dispose()
