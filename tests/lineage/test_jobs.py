"""Issue 16: every long job has a bound, a time limit and a cancel; a rebuild is not started
twice; appeals cannot walk rebuild ids.

A "slow" spec here is a random forest of 2,000 trees grown to full depth: tens of seconds, so
each test stops it long before it could finish, and checks that its process is really gone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.auth.models import Role
from core.config import Settings
from core.db import make_engine, session_factory, transaction
from governance.app import create_app
from lineage import service
from lineage.fresh import ZYGOTE
from lineage.runner import execute_run
from tests.conftest import Served
from tests.support.factories import DataRepo, applicant, spec_for, train_spec, train_via_api

SLOW_ESTIMATOR = {
    "class": "sklearn.ensemble.RandomForestClassifier",
    "params": {"n_estimators": 2000, "min_samples_leaf": 1},
}


def _slow_spec(data_repo: DataRepo, model: str = "slow") -> dict[str, Any]:
    spec = spec_for(data_repo, model=model)
    spec["estimator"] = SLOW_ESTIMATOR
    return spec


def _poll(client: TestClient, path: str, headers: dict[str, str], until: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        body: dict[str, Any] = client.get(path, headers=headers).json()
        if until(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def _fit_children() -> list[int]:
    """The zygote's live children: the fits running now."""
    proc = ZYGOTE._proc
    if proc is None or proc.poll() is not None:
        return []
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == proc.pid and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return children


def test_estimator_parameters_that_set_the_cost_are_bounded(
    client: TestClient, auth, data_repo: DataRepo, settings: Settings
) -> None:
    ds = auth(Role.data_scientist)
    for params, field in (
        ({"n_estimators": 100_000_000}, "estimator.params.n_estimators"),
        ({"n_jobs": -1}, "estimator.params.n_jobs"),
    ):
        spec = spec_for(data_repo, model="huge")
        spec["estimator"] = {"class": "sklearn.ensemble.RandomForestClassifier", "params": params}
        response = client.post("/api/v1/runs", headers=ds, json=spec)
        assert response.status_code == 422, response.text
        assert [d["field"] for d in response.json()["error"]["details"]] == [field]
    spec = spec_for(data_repo, model="huge")
    spec["estimator"]["params"]["max_iter"] = settings.max_iterations + 1
    response = client.post("/api/v1/runs", headers=ds, json=spec)
    assert response.status_code == 422
    assert f"at most {settings.max_iterations}" in response.text
    assert client.get("/api/v1/runs", headers=ds).json()["count"] == 0


def test_a_running_fit_is_cancelled_and_its_process_killed(
    client: TestClient, auth, data_repo: DataRepo
) -> None:
    ds = auth(Role.data_scientist)
    started = client.post("/api/v1/runs", headers=ds, json=_slow_spec(data_repo))
    assert started.status_code == 202
    run_id = started.json()["id"]
    fitting = _poll(client, f"/api/v1/runs/{run_id}", ds, lambda b: b["message"] == "fitting")
    assert fitting["status"] == "running", fitting
    assert len(_fit_children()) == 1
    cancel = client.post(f"/api/v1/runs/{run_id}/cancel", headers=ds)
    assert cancel.status_code == 202
    assert cancel.json()["status"] in {"cancelling", "cancelled"}
    done = _poll(client, f"/api/v1/runs/{run_id}", ds, lambda b: b["status"] == "cancelled")
    assert done["status"] == "cancelled", done
    assert done["model_version"] is None
    assert _fit_children() == []
    assert client.get("/api/v1/models/slow", headers=ds).status_code == 404
    again = client.post(f"/api/v1/runs/{run_id}/cancel", headers=ds)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_finished"
    # The zygote is free again: the next run trains as usual.
    assert train_via_api(client, ds, spec_for(data_repo, model="after"))["status"] == "succeeded"


def test_a_queued_run_is_cancelled_before_it_starts(
    client: TestClient, auth, data_repo: DataRepo
) -> None:
    ds = auth(Role.data_scientist)
    first = client.post("/api/v1/runs", headers=ds, json=_slow_spec(data_repo)).json()["id"]
    queued = client.post("/api/v1/runs", headers=ds, json=spec_for(data_repo, model="never"))
    second = queued.json()["id"]
    _poll(client, f"/api/v1/runs/{first}", ds, lambda b: b["status"] == "running")
    cancelled = client.post(f"/api/v1/runs/{second}/cancel", headers=ds)
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    assert client.post(f"/api/v1/runs/{first}/cancel", headers=ds).status_code == 202
    _poll(client, f"/api/v1/runs/{first}", ds, lambda b: b["status"] == "cancelled")
    time.sleep(0.5)  # the executor reaches the second job, which must not run
    assert client.get(f"/api/v1/runs/{second}", headers=ds).json()["status"] == "cancelled"
    assert client.get("/api/v1/models/never", headers=ds).status_code == 404
    assert client.post("/api/v1/runs/999999/cancel", headers=ds).status_code == 404
    assert (
        client.post(f"/api/v1/runs/{first}/cancel", headers=auth(Role.compliance)).status_code
        == 403
    )


@pytest.fixture
def hurried(settings: Settings) -> FastAPI:
    return create_app(settings.model_copy(update={"job_timeout_s": 2.0}))


def test_a_job_past_its_time_limit_is_stopped(hurried: FastAPI, auth, data_repo: DataRepo) -> None:
    ds = auth(Role.data_scientist)
    with TestClient(hurried) as client:
        run_id = client.post("/api/v1/runs", headers=ds, json=_slow_spec(data_repo)).json()["id"]
        done = _poll(
            client, f"/api/v1/runs/{run_id}", ds, lambda b: b["status"] in {"failed", "succeeded"}
        )
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "timeout"
    assert "GOV_JOB_TIMEOUT_S" in done["message"]
    assert _fit_children() == []


def test_a_second_rebuild_request_returns_the_active_one(
    client: TestClient, auth, served: Served, data_repo: DataRepo
) -> None:
    ds = auth(Role.data_scientist)
    compliance = auth(Role.compliance)
    # A slow run holds the one job worker, so the rebuilds below stay queued.
    blocker = client.post("/api/v1/runs", headers=ds, json=_slow_spec(data_repo)).json()["id"]
    decision = client.post(
        "/api/v1/endpoints/credit/predict",
        headers=auth(Role.predictor),
        json={"features": applicant()},
    ).json()
    version_path = f"/api/v1/models/credit/versions/{served.versions[0]}/rebuilds"
    decision_path = f"/api/v1/decisions/{decision['decision_id']}/rebuild"
    appeals = auth(Role.appeals)
    first = client.post(version_path, headers=compliance).json()
    second = client.post(version_path, headers=ds).json()
    by_decision = [client.post(decision_path, headers=appeals).json() for _ in range(3)]
    assert first["id"] == second["id"]
    assert len({b["id"] for b in by_decision}) == 1
    assert by_decision[0]["id"] != first["id"]
    assert by_decision[0]["status"] == "queued"
    listed = client.get(f"/api/v1/decisions/{decision['decision_id']}/rebuilds", headers=appeals)
    assert [r["id"] for r in listed.json()["data"]] == [by_decision[0]["id"]]
    # Cancelled while queued: never run; a new request then starts a new one.
    for rebuild_id, headers, params in (
        (first["id"], ds, {}),
        (by_decision[0]["id"], appeals, {"decision_id": decision["decision_id"]}),
    ):
        cancelled = client.post(
            f"/api/v1/rebuilds/{rebuild_id}/cancel", headers=headers, params=params
        )
        assert cancelled.status_code == 202, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
    fresh = client.post(version_path, headers=ds).json()
    assert fresh["id"] != first["id"]
    client.post(f"/api/v1/rebuilds/{fresh['id']}/cancel", headers=ds)
    client.post(f"/api/v1/runs/{blocker}/cancel", headers=ds)
    _poll(client, f"/api/v1/runs/{blocker}", ds, lambda b: b["status"] == "cancelled")


def test_rebuild_reads_are_in_the_access_trail_and_hide_server_paths(
    client: TestClient, auth, served: Served, data_repo: DataRepo
) -> None:
    decision = client.post(
        "/api/v1/endpoints/credit/predict",
        headers=auth(Role.predictor),
        json={"features": applicant()},
    ).json()
    appeals = auth(Role.appeals)
    held = {"decision_id": decision["decision_id"]}
    started = client.post(f"/api/v1/decisions/{decision['decision_id']}/rebuild", headers=appeals)
    path = f"/api/v1/rebuilds/{started.json()['id']}"
    deadline = time.monotonic() + 180
    while True:
        done = client.get(path, headers=appeals, params=held).json()
        if done["status"] in {"succeeded", "failed"} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert done["verdict"] == "identical", done
    repo = str(data_repo.repo)
    assert repo not in str(done)
    assert done["report"]["data"]["repo"] == "[server path]"
    by_compliance = client.get(path, headers=auth(Role.compliance)).json()
    assert repo not in str(by_compliance)
    by_scientist = client.get(path, headers=auth(Role.data_scientist)).json()
    assert by_scientist["report"]["data"]["repo"] == repo
    trail = client.get(
        "/api/v1/audit/access-log",
        headers=auth(Role.compliance),
        params={"action": "decision.rebuild.read"},
    ).json()["data"]
    reads = [e for e in trail if e["target"] == decision["decision_id"]]
    assert len(reads) >= 3  # appeals' polls, compliance's and the data scientist's reads
    assert {e["role"] for e in reads} >= {"appeals", "compliance", "data-scientist"}


def test_a_progress_callback_that_fails_mid_fit_leaves_the_next_run_unharmed(
    settings: Settings, data_repo: DataRepo
) -> None:
    """Found in review: a callback raising while the child ran (a progress write, or the cancel
    check reading a database that went away) left the child running and its exit line unread,
    and every later run failed with "expected 'started', got 'exit 1'"."""

    def failing(_fraction: float, message: str) -> None:
        if message == "fitting":
            raise RuntimeError("the progress store went away")

    engine = make_engine(settings)
    try:
        factory = session_factory(engine)
        with transaction(factory) as session:
            run_id = service.create_run(
                session=session, spec_data=_slow_spec(data_repo), actor="test"
            ).id
        assert run_id is not None
        execute_run(settings, run_id, progress=failing)
        with transaction(factory) as session:
            failed = service.run_public(session, service.get_run(session=session, run_id=run_id))
    finally:
        engine.dispose()
    assert failed.status == "failed" and failed.error is not None, failed
    assert "progress store went away" in failed.error.message
    assert _fit_children() == []  # the slow fit was killed, not left to run for minutes
    assert train_spec(settings, spec_for(data_repo, model="after")) == 1
