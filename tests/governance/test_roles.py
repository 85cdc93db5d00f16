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
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.auth import sessions
from core.auth.models import Role
from core.db import session_factory, transaction
from core.deps import PUBLIC, declared_roles
from tests.conftest import KeyMaker

DS, CO, AP, PR, OU = "data-scientist", "compliance", "appeals", "predictor", "outcomes"
RV = "reviewer"
VA = "validator"

EVERY = {AP, CO, DS, OU, PR, RV, VA}
TABLE: dict[str, Any] = {
    # The web console: a person's session cookie instead of a bearer key, the same roles as the
    # API routes each page reads.
    "GET /console": PUBLIC,
    "GET /console/sign-in": PUBLIC,
    "POST /console/sign-in": PUBLIC,
    "GET /console/": EVERY,
    "GET /console/decisions": {CO},
    "GET /console/decisions/export": {CO},
    "GET /console/open": {AP, CO, DS},
    "GET /console/decisions/{decision_id}": {AP, CO, DS},
    "GET /console/decisions/{decision_id}/explanations": {AP, CO, DS},
    "GET /console/notices": {AP, CO},
    "POST /console/decisions/{decision_id}/notice": {AP, CO},
    "GET /console/decisions/{decision_id}/notice.pdf": {AP, CO},
    "POST /console/decisions/{decision_id}/notice/sent": {AP, CO},
    "GET /console/decisions/{decision_id}/appeal": {AP, CO},
    "POST /console/decisions/{decision_id}/appeal": {AP, CO},
    "GET /console/cases": {AP, CO, RV},
    "GET /console/cases/{case_id}": {AP, CO, RV},
    "POST /console/cases/{case_id}/assign": {CO},
    "POST /console/cases/{case_id}/decision": {CO, RV},
    "POST /console/cases/{case_id}/close": {CO, RV},
    "GET /console/cases/{case_id}/letter": {AP, CO, RV},
    "POST /console/decisions/{decision_id}/replay": {AP, CO, DS},
    "GET /console/audit": {CO},
    "GET /console/fairness": {CO},
    "GET /console/models": {CO, DS},
    "GET /console/drift": {CO, DS},
    "GET /console/experiments": {CO, DS},
    "GET /console/experiments/{experiment_id}": {CO, DS},
    "GET /console/lda-searches": {CO, DS, VA},
    "GET /console/lda-searches/{search_id}": {CO, DS, VA},
    "GET /console/lda-searches/{search_id}/frontier.png": {CO, DS, VA},
    "GET /console/promotions": {CO, DS, VA},
    "GET /console/promotions/{promotion_id}": {CO, DS, VA},
    "POST /console/promotions/{promotion_id}/decision": {VA},
    "POST /console/models/{name}/versions/{version}/rebuild": {CO, DS},
    "GET /console/rebuilds/{rebuild_id}": {CO, DS},
    "GET /console/models/{name}/versions/{version}": {CO, DS},
    "GET /console/models/{name}/versions/{version}/technical-documentation": {CO, DS},
    "GET /healthz": PUBLIC,
    "GET /readyz": PUBLIC,
    "GET /metrics": PUBLIC,
    "GET /v2/health/live": PUBLIC,
    "GET /v2/health/ready": PUBLIC,
    "GET /v2/models/{name}": {PR},
    "GET /v2/models/{name}/ready": {PR},
    "POST /v2/models/{name}/infer": {PR},
    "GET /api/v1/whoami": EVERY,
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
    "GET /api/v1/models/{name}/versions/{version}/technical-documentation": {CO, DS},
    "GET /api/v1/inventory": {CO, DS},
    "POST /api/v1/models/{name}/versions": {DS},
    "POST /api/v1/imports/mlflow": {DS},
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
    "POST /api/v1/decisions/{decision_id}/notice": {AP, CO},
    "GET /api/v1/decisions/{decision_id}/notice": {AP, CO},
    "POST /api/v1/decisions/{decision_id}/notice/release": {CO},
    "POST /api/v1/decisions/{decision_id}/notice/sent": {AP, CO},
    "GET /api/v1/notices": {AP, CO},
    "GET /api/v1/notices/awaiting": {AP, CO},
    "GET /api/v1/notices/stability": {CO},
    "POST /api/v1/experiments": {DS},
    "GET /api/v1/experiments": {CO, DS},
    "GET /api/v1/experiments/{experiment_id}": {CO, DS},
    "PATCH /api/v1/experiments/{experiment_id}": {DS},
    "POST /api/v1/experiments/{experiment_id}/end": {DS},
    "GET /api/v1/experiments/{experiment_id}/history": {CO, DS},
    "POST /api/v1/models/{name}/versions/{version}/promotion": {DS},
    "GET /api/v1/promotions": {CO, DS, VA},
    "GET /api/v1/promotions/{promotion_id}": {CO, DS, VA},
    "POST /api/v1/promotions/{promotion_id}/approve": {VA},
    "POST /api/v1/promotions/{promotion_id}/reject": {VA},
    "POST /api/v1/promotions/{promotion_id}/waive": set(),
    "POST /api/v1/promotions/{promotion_id}/rollout": {DS, VA},
    "POST /api/v1/endpoints/{name}/rollback": {DS},
    "POST /api/v1/lda-searches": {DS},
    "GET /api/v1/lda-searches/{search_id}": {CO, DS, VA},
    "GET /api/v1/lda-searches/{search_id}/frontier.png": {CO, DS, VA},
    "POST /api/v1/lda-searches/{search_id}/choice": {DS},
    "POST /api/v1/decisions/{decision_id}/appeals": {AP, CO},
    "GET /api/v1/appeals": {AP, CO, RV},
    "GET /api/v1/appeals/oversight": {CO},
    "GET /api/v1/appeals/{case_id}": {AP, CO, RV},
    "POST /api/v1/appeals/{case_id}/assign": {CO},
    "GET /api/v1/appeals/{case_id}/review": {CO, RV},
    "POST /api/v1/appeals/{case_id}/decision": {CO, RV},
    "POST /api/v1/appeals/{case_id}/close": {CO, RV},
    "GET /api/v1/appeals/{case_id}/letter": {AP, CO, RV},
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
    # Last: it ends the session the lines before it use.
    "POST /console/sign-out": EVERY,
}

PATH_VALUES = {
    "name": "credit",
    "version": "1",
    "decision_id": str(uuid.UUID(int=7)),
    "rebuild_id": "1",
    "run_id": "1",
    "dataset_id": "1",
    "key_id": "nosuchkey",
    "case_id": "nosuchcase",
    "experiment_id": "nosuchexperiment",
    "promotion_id": "nosuchpromotion",
    "search_id": "nosuchsearch",
}


def test_the_role_table_is_complete(app: FastAPI) -> None:
    declared = declared_roles(app)
    missing = sorted(set(declared) - set(TABLE))
    assert missing == [], f"routes without a line in TABLE: {missing}"
    assert sorted(set(TABLE) - set(declared)) == []
    wrong = {k: (declared[k], TABLE[k]) for k in TABLE if declared[k] != TABLE[k]}
    assert wrong == {}


@pytest.fixture
def keys(make_key: KeyMaker, engine: sa.Engine) -> dict[Role, dict[str, dict[str, str]]]:
    """For each role: a bearer key's headers for the API, and a console session's (its cookie
    and CSRF token) for the console."""
    found = {}
    for role in Role:
        key = make_key(role)
        with transaction(session_factory(engine)) as session:
            token, _ = sessions.sign_in(session, key, max_age_s=3600)
        found[role] = {
            "api": {"Authorization": f"Bearer {key}"},
            "console": {
                "Cookie": f"govern_session={token}",
                "X-CSRF-Token": sessions.csrf_token(token),
            },
        }
    return found


def test_each_role_gets_what_the_table_says(
    client: TestClient, keys: dict[Role, dict[str, dict[str, str]]]
) -> None:
    leaks, refusals = [], []
    for line, allowed in TABLE.items():
        method, template = line.split(" ", 1)
        path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], template)
        kind = "console" if path.startswith("/console") else "api"
        for role, both in keys.items():
            headers = both[kind]
            body = {} if method in {"POST", "PUT"} else None
            response = client.request(
                method, path, headers=headers, json=body, follow_redirects=False
            )
            assert response.status_code < 500, (line, role, response.text)
            permitted = allowed == PUBLIC or role is Role.admin or role.value in allowed
            if line == "POST /console/sign-in":
                # Public, but a sign-in form without its own token is refused (403): login CSRF.
                assert response.status_code == 403 and "has expired" in response.text
                continue
            if response.status_code == 403 and permitted:
                refusals.append((line, role.value, response.text))
            if response.status_code != 403 and not permitted:
                leaks.append((line, role.value, response.status_code))
    assert leaks == [], "\n".join(map(str, leaks))
    assert refusals == []
