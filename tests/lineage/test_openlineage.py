"""OpenLineage run events (``lineage.openlineage_events``): START, then COMPLETE or FAIL, for
training runs, rebuilds and LDA searches, through the client's file transport and over HTTP to
a receiver the test starts; every event validates against the run event's JSON Schema."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from pydantic import SecretStr

from core.auth.models import Role
from core.db import make_engine, session_factory, transaction
from lineage import service
from lineage.dvc_repo import clear_cache
from lineage.openlineage_events import run_id
from lineage.runner import execute_run
from tests.support.factories import (
    DataRepo,
    cached_model,
    cached_spec,
    client_with,
    make_data_repo,
    rebuilt,
    spec_for,
)
from tests.support.openlineage_spec import RUN_EVENT_SCHEMA

CHECK = jsonschema.Draft202012Validator(
    RUN_EVENT_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def _valid(event: dict[str, Any]) -> dict[str, Any]:
    """The event validates against the schema; its time and every URL are what they say."""
    errors = sorted(CHECK.iter_errors(event), key=str)
    assert errors == [], [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]
    assert datetime.fromisoformat(event["eventTime"]).tzinfo is not None
    urls = [event["producer"], event["schemaURL"]]
    for part in (event["run"], event["job"], *event.get("inputs", []), *event.get("outputs", [])):
        for facet in (part.get("facets") or {}).values():
            urls += [facet["_producer"], facet["_schemaURL"]]
    for url in urls:
        assert urlsplit(url).scheme == "https" and urlsplit(url).netloc, url
    return event


def _events(path: Path) -> list[dict[str, Any]]:
    return [_valid(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def test_a_training_run_and_its_rebuild_emit_start_and_complete_with_their_data_and_model(
    settings: Any, auth: Any, data_repo: DataRepo, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    changed = settings.model_copy(
        update={"openlineage_transport": "file", "openlineage_file": events}
    )
    version = cached_spec(changed, spec_for(data_repo, model="credit-ol"))
    with client_with(changed) as client:
        headers = auth(Role.data_scientist)
        lineage = client.get(
            f"/api/v1/models/credit-ol/versions/{version}/lineage", headers=headers
        ).json()["lineage"]
        assert rebuilt(client, headers, "credit-ol", version)["verdict"] == "identical"

    sent = _events(events)
    training = [e for e in sent if e["job"]["name"] == "training.credit-ol"]
    assert [e["eventType"] for e in training] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in training} == {run_id("training", lineage["run_id"])}
    data = lineage["dataset"]
    for event in training:
        (source,) = event["inputs"]
        assert source["name"] == data["path"] and source["namespace"].endswith(data["repo"])
        dvc = source["facets"]["dvc"]
        assert (dvc["commit"], dvc["md5"], dvc["sha256"]) == (
            data["commit"],
            data["md5"],
            data["sha256"],
        )
        assert source["facets"]["version"]["datasetVersion"] == data["md5"]
        assert "repaid" in {f["name"] for f in source["facets"]["schema"]["fields"]}
    (model,) = training[-1]["outputs"]
    assert model["name"] == f"models/credit-ol/versions/{version}"
    facet = model["facets"]["govern_model"]
    assert facet["artifactSha256"] == lineage["artifact"]["sha256"]
    assert facet["fingerprint"] == lineage["artifact"]["fingerprint"]
    assert model["facets"]["version"]["datasetVersion"] == lineage["artifact"]["sha256"]

    rebuild = [e for e in sent if e["job"]["name"] == f"rebuild.credit-ol.v{version}"]
    assert [e["eventType"] for e in rebuild] == ["START", "COMPLETE"]
    assert rebuild[-1]["run"]["facets"]["govern_run"]["verdict"] == "identical"
    assert rebuild[-1]["inputs"][0]["facets"]["dvc"]["md5"] == data["md5"]


def test_a_failed_run_emits_fail_with_its_error_and_off_emits_nothing(
    settings: Any, data_repo: DataRepo, tmp_path: Path
) -> None:
    """The data goes missing between the run's request and its start (its DVC cache and remote
    emptied): the runner fails, and says so in a FAIL event with the error."""
    events = tmp_path / "events.jsonl"
    changed = settings.model_copy(
        update={"openlineage_transport": "file", "openlineage_file": events}
    )
    own = make_data_repo(tmp_path / "data", versions=1, n=300)
    engine = make_engine(changed)
    try:
        factory = session_factory(engine)
        with transaction(factory) as session:
            run = service.create_run(
                session=session, spec_data=spec_for(own, model="credit-bad"), actor="test"
            )
        clear_cache(own.repo)
        shutil.rmtree(own.remote)
        assert run.id is not None
        execute_run(changed, run.id)
        with transaction(factory) as session:
            assert service.get_run(session=session, run_id=run.id).status == "failed"
    finally:
        engine.dispose()
    sent = _events(events)
    assert [e["eventType"] for e in sent] == ["START", "FAIL"]
    assert sent[0]["run"]["runId"] == sent[1]["run"]["runId"] == run_id("training", run.id)
    error = sent[-1]["run"]["facets"]["errorMessage"]
    assert error["message"] and error["programmingLanguage"] == "python"
    assert error["programmingLanguage"] == "python"

    quiet = tmp_path / "quiet.jsonl"
    off = settings.model_copy(update={"openlineage_file": quiet})  # the default: off
    cached_spec(off, spec_for(data_repo, model="credit-quiet"))
    assert not quiet.exists()


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, dict[str, str], Any]]]]:
    received: list[tuple[str, dict[str, str], Any]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_events_reach_an_http_receiver_and_a_receiver_that_is_down_fails_nothing(
    settings: Any, data_repo: DataRepo, receiver: Any
) -> None:
    url, received = receiver
    changed = settings.model_copy(
        update={
            "openlineage_transport": "http",
            "openlineage_url": url,
            "openlineage_api_key": SecretStr("s3cret-token"),
        }
    )
    version = cached_spec(changed, spec_for(data_repo, model="credit-http"))
    events = [body for _path, _headers, body in received]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    for event in events:
        _valid(event)
    assert {path for path, _h, _b in received} == {"/api/v1/lineage"}
    assert received[0][1]["Authorization"] == "Bearer s3cret-token"
    assert events[-1]["outputs"][0]["name"] == f"models/credit-http/versions/{version}"

    down = settings.model_copy(
        update={"openlineage_transport": "http", "openlineage_url": "http://127.0.0.1:9"}
    )
    assert cached_spec(down, spec_for(data_repo, model="credit-down")) == 1


def test_an_lda_search_emits_start_and_complete_with_every_candidate_version(
    settings: Any, auth: Any, data_repo: DataRepo, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    changed = settings.model_copy(
        update={"openlineage_transport": "file", "openlineage_file": events}
    )
    base = cached_model(changed, data_repo, model="credit-base")
    with client_with(changed) as client:
        started = client.post(
            "/api/v1/lda-searches",
            headers=auth(Role.data_scientist),
            json={
                "base": {"model": "credit-base", "version": base},
                "space": {"params": {"max_iter": [20]}, "drop_features": [["loan_amount"]]},
                "attribute": "sex",
                "max_accuracy_loss": 0.05,
            },
        )
        assert started.status_code == 202, started.text
        search_id = started.json()["search_id"]
        found = client.get(f"/api/v1/lda-searches/{search_id}", headers=auth(Role.compliance))
        candidates = found.json()["candidates"]
    sent = _events(events)
    search = [e for e in sent if e["job"]["name"] == "lda_search.credit-base"]
    assert [e["eventType"] for e in search] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in search} == {run_id("lda_search", search_id)}
    names = {o["name"] for o in search[-1]["outputs"]}
    assert names == {f"models/credit-base-lda/versions/{c['version']}" for c in candidates}
    assert len(names) == 2
    trained = [e for e in sent if e["job"]["name"] == "training.credit-base-lda"]
    assert sorted(e["eventType"] for e in trained) == ["COMPLETE", "COMPLETE", "START", "START"]
