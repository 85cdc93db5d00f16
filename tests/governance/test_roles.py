"""Every route, every role: the declared table, and what each key actually gets.

A route added without a line here fails ``test_the_role_table_is_complete``; a guard that lets a
role through that the table refuses (or the reverse) fails ``test_each_role_gets_what_the_table
says``. ``admin`` passes every check and is not listed.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.auth.models import Role
from core.deps import PUBLIC, declared_roles
from tests.conftest import KeyMaker

DS, CO, AP, PR, OU = "data-scientist", "compliance", "appeals", "predictor", "outcomes"

TABLE: dict[str, Any] = {
    "GET /healthz": PUBLIC,
    "GET /readyz": PUBLIC,
    "GET /metrics": PUBLIC,
    "GET /v2/health/live": PUBLIC,
    "GET /v2/health/ready": PUBLIC,
    "GET /v2/models/{name}": {PR},
    "GET /v2/models/{name}/ready": {PR},
    "POST /v2/models/{name}/infer": {PR},
    "GET /api/v1/whoami": {AP, CO, DS, OU, PR},
    "GET /api/v1/keys": set(),
    "POST /api/v1/keys": set(),
    "DELETE /api/v1/keys/{key_id}": set(),
    "POST /api/v1/datasets": {DS},
    "GET /api/v1/datasets": {CO, DS},
    "GET /api/v1/datasets/{dataset_id}": {CO, DS},
    "POST /api/v1/runs": {DS},
    "GET /api/v1/runs": {CO, DS},
    "GET /api/v1/runs/{run_id}": {CO, DS},
    "POST /api/v1/runs/{run_id}/cancel": {DS},
    "GET /api/v1/models": {CO, DS},
    "GET /api/v1/models/{name}": {CO, DS},
    "GET /api/v1/models/{name}/versions/{version}": {CO, DS},
    "GET /api/v1/models/{name}/versions/{version}/lineage": {CO, DS},
    "GET /api/v1/models/{name}/stage-history": {CO, DS},
    "GET /api/v1/models/{name}/versions/{version}/card": {CO, DS},
    "GET /api/v1/inventory": {CO, DS},
    "POST /api/v1/models/{name}/versions": {DS},
    "POST /api/v1/models/{name}/versions/{version}/stage": {DS},
    "POST /api/v1/models/{name}/versions/{version}/rebuilds": {CO, DS},
    "GET /api/v1/models/{name}/versions/{version}/rebuilds": {CO, DS},
    "POST /api/v1/decisions/{decision_id}/rebuild": {AP, CO, DS},
    "GET /api/v1/rebuilds/{rebuild_id}": {AP, CO, DS},
    "POST /api/v1/rebuilds/{rebuild_id}/cancel": {AP, CO, DS},
    "GET /api/v1/decisions/{decision_id}/rebuilds": {AP, CO, DS},
    "PUT /api/v1/endpoints/{name}": {DS},
    "GET /api/v1/endpoints": {CO, DS},
    "GET /api/v1/endpoints/{name}": {CO, DS},
    "POST /api/v1/endpoints/{name}/predict": {PR},
    "GET /api/v1/decisions": {CO},
    "GET /api/v1/decisions/{decision_id}": {AP, CO, DS},
    "GET /api/v1/decisions/{decision_id}/dossier": {AP, CO, DS},
    "POST /api/v1/decisions/{decision_id}/outcome": {DS, OU},
    "GET /api/v1/decisions/{decision_id}/outcomes": {AP, CO, DS, OU},
    "POST /api/v1/outcomes": {DS, OU},
    "GET /api/v1/decisions/{decision_id}/explanations/shap": {AP, CO, DS},
    "GET /api/v1/decisions/{decision_id}/explanations/anchor": {AP, CO, DS},
    "GET /api/v1/decisions/{decision_id}/explanations/counterfactual": {AP, CO, DS},
    "GET /api/v1/decisions/{decision_id}/robustness": {AP, CO, DS},
    "GET /api/v1/decisions/{decision_id}/reasons": {AP, CO, DS},
    "POST /api/v1/decisions/{decision_id}/replay": {AP, CO, DS},
    "GET /api/v1/fairness": {CO},
    "GET /api/v1/drift": {CO, DS},
    "GET /api/v1/audit/verify": {CO},
    "POST /api/v1/audit/verify": {CO},
    "POST /api/v1/audit/checkpoints": {CO},
    "GET /api/v1/audit/checkpoints": {CO},
    "GET /api/v1/audit/alerts": {CO, DS},
    "POST /api/v1/audit/alerts/scan": {CO},
    "GET /api/v1/audit/access-log": {CO},
}

PATH_VALUES = {
    "name": "credit",
    "version": "1",
    "decision_id": str(uuid.UUID(int=7)),
    "rebuild_id": "1",
    "run_id": "1",
    "dataset_id": "1",
    "key_id": "nosuchkey",
}


def test_the_role_table_is_complete(app: FastAPI) -> None:
    declared = declared_roles(app)
    missing = sorted(set(declared) - set(TABLE))
    assert missing == [], f"routes without a line in TABLE: {missing}"
    assert sorted(set(TABLE) - set(declared)) == []
    wrong = {k: (declared[k], TABLE[k]) for k in TABLE if declared[k] != TABLE[k]}
    assert wrong == {}


@pytest.fixture
def keys(make_key: KeyMaker) -> dict[Role, dict[str, str]]:
    return {role: {"Authorization": f"Bearer {make_key(role)}"} for role in Role}


def test_each_role_gets_what_the_table_says(
    client: TestClient, keys: dict[Role, dict[str, str]]
) -> None:
    leaks, refusals = [], []
    for line, allowed in TABLE.items():
        method, template = line.split(" ", 1)
        path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], template)
        for role, headers in keys.items():
            body = {} if method in {"POST", "PUT"} else None
            response = client.request(method, path, headers=headers, json=body)
            assert response.status_code < 500, (line, role, response.text)
            permitted = allowed == PUBLIC or role is Role.admin or role.value in allowed
            if response.status_code == 403 and permitted:
                refusals.append((line, role.value, response.text))
            if response.status_code != 403 and not permitted:
                leaks.append((line, role.value, response.status_code))
    assert leaks == [], "\n".join(map(str, leaks))
    assert refusals == []
