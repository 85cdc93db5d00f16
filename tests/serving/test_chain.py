from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from core.audit.chain import canonical_json, content_hash, record_hash
from core.audit.models import ChainHead
from core.auth.models import Role
from core.config import Settings
from core.db import make_engine, session_factory
from governance.cli import app as cli
from serving.decision_log import DecisionLog
from serving.models import DecisionRecord
from serving.payload import DecisionPayload
from tests.conftest import Served
from tests.support.factories import applicant

DECISIONS = DecisionRecord.__table__
HEADS = ChainHead.__table__


def _writer(url: str, var_dir: str, worker: int, count: int) -> None:
    import uuid

    from core.db import utcnow

    settings = Settings(database_url=url, var_dir=Path(var_dir), environment="test")
    engine = make_engine(settings)
    log = DecisionLog(session_factory(engine), max_batch=16)
    log.start()
    futures = []
    for i in range(count):
        content = {
            "decision_id": str(uuid.uuid4()),
            "kind": "decision",
            "created_at": utcnow().isoformat(),
            "endpoint": "credit",
            "key_id": f"worker{worker}",
            "label": i % 2,
            "score": i / count,
            "model": {"name": "credit", "version": 1, "sha256": "0" * 64},
            "route": "live",
            "features": {"i": i},
            "context": {},
        }
        futures.append(log.submit([DecisionPayload.from_content(content)]))
        if i % 25 == 0:
            futures[-1].result()
    for future in futures:
        future.result(timeout=60)
    log.stop()
    engine.dispose()


def test_chain_holds_under_concurrent_writers_in_several_processes(
    settings: Settings, engine: sa.Engine, client: TestClient, auth
) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_writer, args=(settings.database_url, str(settings.var_dir), w, 150))
        for w in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with engine.connect() as conn:
        seqs = [r.seq for r in conn.execute(sa.select(DECISIONS.c.seq).order_by(DECISIONS.c.seq))]
        by_worker = dict(
            conn.execute(
                sa.select(DECISIONS.c.key_id, sa.func.count()).group_by(DECISIONS.c.key_id)
            ).all()
        )
    assert seqs == list(range(1, 451))
    assert by_worker == {"worker0": 150, "worker1": 150, "worker2": 150}
    report = client.get("/api/v1/audit/verify", headers=auth(Role.compliance)).json()
    assert report["ok"] is True
    assert _decision_chain(report)["records_checked"] == 450


@pytest.fixture
def logged(client: TestClient, auth, served: Served) -> list[str]:
    instances = [
        {"subject_id": f"s{i}", "features": applicant(income=30000.0 + 1000 * i)} for i in range(6)
    ]
    response = client.post(
        "/api/v1/endpoints/credit/predict",
        headers=auth(Role.predictor),
        json={"instances": instances},
    )
    return [d["decision_id"] for d in response.json()["decisions"]]


def _report(client: TestClient, auth) -> dict:
    return client.get("/api/v1/audit/verify", headers=auth(Role.compliance)).json()


def _problem(client: TestClient, auth) -> dict:
    report = _report(client, auth)
    assert report["ok"] is False
    return _decision_chain(report)["first_problem"]


def test_an_altered_column_is_named(
    client: TestClient, auth, logged: list[str], engine: sa.Engine
) -> None:
    assert _report(client, auth)["ok"] is True
    with engine.begin() as conn:
        conn.execute(
            DECISIONS.update()
            .where(DECISIONS.c.seq == 3)
            .values(
                label="1"
                if conn.execute(sa.select(DECISIONS.c.label).where(DECISIONS.c.seq == 3)).scalar()
                == "0"
                else "0"
            )
        )
    problem = _problem(client, auth)
    assert problem == {
        "seq": 3,
        "id": logged[2],
        "problem": "altered",
        "detail": "a column differs from its content",
    }


def test_an_altered_payload_is_named(
    client: TestClient, auth, logged: list[str], engine: sa.Engine
) -> None:
    with engine.begin() as conn:
        payload = json.loads(
            conn.execute(sa.select(DECISIONS.c.payload).where(DECISIONS.c.seq == 2)).scalar()
        )
        payload["features"]["income"] = 999999.0
        conn.execute(
            DECISIONS.update().where(DECISIONS.c.seq == 2).values(payload=canonical_json(payload))
        )
    problem = _problem(client, auth)
    assert (problem["seq"], problem["id"], problem["problem"]) == (2, logged[1], "altered")


def test_a_deleted_record_is_named(
    client: TestClient, auth, logged: list[str], engine: sa.Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(DECISIONS.delete().where(DECISIONS.c.seq == 4))
    problem = _problem(client, auth)
    assert (problem["seq"], problem["problem"]) == (4, "deleted")
    assert logged[4] in problem["detail"]


def test_a_deleted_last_record_is_caught_by_the_head(
    client: TestClient, auth, logged: list[str], engine: sa.Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(DECISIONS.delete().where(DECISIONS.c.seq == 6))
    problem = _problem(client, auth)
    assert (problem["seq"], problem["problem"]) == (6, "deleted")


def _forge(conn, seq: int, prev: str, decision_id: str) -> dict:
    content = {
        "decision_id": decision_id,
        "kind": "decision",
        "created_at": "2026-01-01T00:00:00+00:00",
        "endpoint": "credit",
        "key_id": "intruder",
        "label": 1,
        "score": 0.99,
        "model": {"name": "credit", "version": 1, "sha256": "0" * 64},
        "route": "live",
        "features": {},
        "context": {},
    }
    payload = canonical_json(content)
    digest = content_hash(payload)
    return {
        "seq": seq,
        "decision_id": decision_id,
        "kind": "decision",
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "endpoint": "credit",
        "model": "credit",
        "version": 1,
        "artifact_sha256": "0" * 64,
        "route": "live",
        "label": "1",
        "score": 0.99,
        "key_id": "intruder",
        "payload": payload,
        "content_hash": digest,
        "prev_hash": prev,
        "record_hash": record_hash("decision", seq, prev, digest),
    }


def test_an_inserted_record_is_named(
    client: TestClient, auth, logged: list[str], engine: sa.Engine
) -> None:
    forged_id = "11111111-2222-3333-4444-555555555555"
    with engine.begin() as conn:
        last = conn.execute(sa.select(DECISIONS.c.record_hash).where(DECISIONS.c.seq == 6)).scalar()
        conn.execute(DECISIONS.insert().values(**_forge(conn, 7, last, forged_id)))
    problem = _problem(client, auth)
    assert (problem["seq"], problem["id"], problem["problem"]) == (7, forged_id, "inserted")


def _rewrite_whole_chain(engine: sa.Engine) -> None:
    """A consistent forgery: change a decision, then recompute every hash and the head."""
    with engine.begin() as conn:
        rows = conn.execute(sa.select(DECISIONS).order_by(DECISIONS.c.seq)).all()
        prev = "0" * 64
        for row in rows:
            content = json.loads(row.payload)
            if row.seq == 2:
                content["label"] = 1 - content["label"]
            payload = canonical_json(content)
            digest = content_hash(payload)
            link = record_hash("decision", row.seq, prev, digest)
            conn.execute(
                DECISIONS.update()
                .where(DECISIONS.c.seq == row.seq)
                .values(
                    payload=payload,
                    label=str(content["label"]),
                    content_hash=digest,
                    prev_hash=prev,
                    record_hash=link,
                )
            )
            prev = link
        conn.execute(HEADS.update().where(HEADS.c.chain == "decision").values(record_hash=prev))


def test_a_consistent_rewrite_is_caught_by_an_exported_checkpoint(
    client: TestClient,
    auth,
    logged: list[str],
    engine: sa.Engine,
    env_settings: Settings,
    tmp_path: Path,
) -> None:
    compliance = auth(Role.compliance)
    exported = client.post(
        "/api/v1/audit/checkpoints", headers=compliance, json={"chain": "decision"}
    ).json()
    assert exported["seq"] == 6
    _rewrite_whole_chain(engine)
    with engine.begin() as conn:  # the forger also removes the stored checkpoint
        conn.execute(sa.text("DELETE FROM audit_checkpoint"))

    plain = _report(client, auth)
    assert _decision_chain(plain)["ok"] is True, "a consistent rewrite passes the chain check alone"
    with_export = client.post(
        "/api/v1/audit/verify", headers=compliance, json={"checkpoints": [exported]}
    ).json()
    assert with_export["ok"] is False
    [check] = with_export["checkpoints"]
    assert check["signature_valid"] is True
    assert check["matches"] is False
    assert "rewritten" in check["problem"]

    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(exported))
    result = CliRunner().invoke(cli, ["audit", "verify", "--checkpoint", str(path)])
    assert result.exit_code == 1
    assert "rewritten" in result.output


def test_forged_checkpoints_do_not_verify(
    client: TestClient, auth, logged: list[str], env_settings: Settings
) -> None:
    compliance = auth(Role.compliance)
    checkpoint = client.post("/api/v1/audit/checkpoints", headers=compliance, json={}).json()
    forged = {**checkpoint, "seq": 5}
    report = client.post(
        "/api/v1/audit/verify", headers=compliance, json={"checkpoints": [forged]}
    ).json()
    assert report["checkpoints"][-1]["signature_valid"] is False
    assert report["ok"] is False


def test_audit_cli_verifies_and_names_the_record(
    env_settings: Settings, logged: list[str], engine: sa.Engine
) -> None:
    ok = CliRunner().invoke(cli, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "6 records" in ok.output
    with engine.begin() as conn:
        conn.execute(DECISIONS.update().where(DECISIONS.c.seq == 5).values(score=0.0))
    bad = CliRunner().invoke(cli, ["audit", "verify"])
    assert bad.exit_code == 1
    assert logged[4] in bad.output
    assert "altered" in bad.output


def test_only_compliance_and_admin_audit(client: TestClient, auth) -> None:
    for role in (Role.appeals, Role.predictor, Role.data_scientist):
        assert client.get("/api/v1/audit/verify", headers=auth(role)).status_code == 403
        assert (
            client.post("/api/v1/audit/checkpoints", headers=auth(role), json={}).status_code == 403
        )


def _decision_chain(report: dict) -> dict:
    [chain] = [c for c in report["chains"] if c["chain"] == "decision"]
    return chain


def _content(key: str, subject: str) -> DecisionPayload:
    import uuid

    from core.db import utcnow

    return DecisionPayload.from_content(
        {
            "decision_id": str(uuid.uuid4()),
            "kind": "decision",
            "created_at": utcnow().isoformat(),
            "endpoint": "credit",
            "key_id": key,
            "label": 1,
            "score": 0.7,
            "model": {"name": "credit", "version": 1, "sha256": "0" * 64},
            "route": "live",
            "subject_id": subject,
            "features": {"i": 1},
            "context": {},
        }
    )


def test_a_record_that_cannot_be_written_fails_only_its_own_caller(settings: Settings) -> None:
    """Issue 16: a lone surrogate failed the whole group commit, so every request batched with
    it got 503. Now the group is retried caller by caller."""
    import time

    engine = make_engine(settings)
    log = DecisionLog(session_factory(engine))
    log.start()
    try:
        log.submit([_content("honest", "first")]).result(timeout=30)  # the chain head exists
        # Hold the chain's write lock so the next submissions queue up and share one commit.
        blocker = engine.connect()
        if engine.dialect.name == "sqlite":
            blocker.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            blocker.begin()
            blocker.execute(sa.select(HEADS).with_for_update())
        try:
            first = log.submit([_content("honest", "a")])
            deadline = time.monotonic() + 10
            while not log._queue.empty() and time.monotonic() < deadline:
                time.sleep(0.01)  # the writer has taken it and waits for the lock
            bad = log.submit([_content("attacker", "x\ud800")])
            others = [log.submit([_content(f"honest-{i}", f"s{i}")]) for i in range(6)]
        finally:
            blocker.rollback()
            blocker.close()
        first.result(timeout=30)
        with pytest.raises(UnicodeEncodeError):
            bad.result(timeout=30)
        placed = [future.result(timeout=30) for future in others]
    finally:
        log.stop()
    assert all(len(p) == 1 for p in placed)
    with engine.connect() as conn:
        subjects = conn.execute(sa.select(DECISIONS.c.subject_id)).scalars().all()
        seqs = conn.execute(sa.select(DECISIONS.c.seq).order_by(DECISIONS.c.seq)).scalars().all()
    engine.dispose()
    assert sorted(subjects) == sorted(["first", "a", *[f"s{i}" for i in range(6)]])
    assert seqs == list(range(1, 9))  # the chain has no gap where the bad record was refused


def test_a_lone_surrogate_is_refused_at_the_edge_naming_the_field(
    client: TestClient, served: Served
) -> None:
    body = '{"subject_id": "x\\ud800", "features": {}}'
    response = client.post(
        "/api/v1/endpoints/credit/predict",
        content=body,
        headers={**served.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "subject_id"
    assert "surrogate" in detail["message"]
    # A proper pair (an emoji) is text like any other.
    ok = client.post(
        "/api/v1/endpoints/credit/predict",
        content='{"subject_id": "\\ud83d\\ude00", "features": ' + json.dumps(applicant()) + "}",
        headers={**served.headers, "Content-Type": "application/json"},
    )
    assert ok.status_code == 200, ok.text
