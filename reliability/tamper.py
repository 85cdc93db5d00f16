"""The tamper drill: edit the decision log behind govern's back, four ways, and see what
``govern audit verify`` says.

Each tampering happens on its own copy of one logged database, with govern stopped, as an
attacker with database access would do it: UPDATE one decision, DELETE one, INSERT a forged one,
and finally rewrite the whole chain consistently (every hash recomputed, the head moved, the
stored checkpoints deleted), which only the exported, signed checkpoint can catch.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.audit.chain import canonical_json, content_hash, record_hash
from reliability.load import decide, logged, reconcile
from reliability.report import Row, counts
from reliability.scenarios import Profile
from reliability.server import Server
from reliability.world import World
from serving.models import DecisionRecord

DECISIONS = 60
DECISION = sa.table(
    "decision",
    sa.column("score"),
    sa.column("seq"),
    sa.column("decision_id"),
    sa.column("payload"),
    sa.column("content_hash"),
    sa.column("prev_hash"),
    sa.column("record_hash"),
    sa.column("label"),
    sa.column("id"),
)
HEAD = sa.table("chain_head", sa.column("chain"), sa.column("seq"), sa.column("record_hash"))
CHECKPOINTS = sa.table("audit_checkpoint", sa.column("chain"))


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def _update(conn: sa.Connection) -> int:
    """Flip one decision's label inside its stored content."""
    seq = 17
    payload = conn.execute(sa.select(DECISION.c.payload).where(DECISION.c.seq == seq)).scalar_one()
    content = json.loads(payload)
    content["label"] = 1 - int(content["label"]) if isinstance(content["label"], int) else "x"
    conn.execute(
        DECISION.update().where(DECISION.c.seq == seq).values(payload=canonical_json(content))
    )
    return seq


def _delete(conn: sa.Connection) -> int:
    seq = 23
    conn.execute(
        sa.text(
            "DELETE FROM decision_outcome WHERE decision_id IN "
            "(SELECT decision_id FROM decision WHERE seq = :seq)"
        ),
        {"seq": seq},
    )
    conn.execute(DECISION.delete().where(DECISION.c.seq == seq))
    return seq


def _insert(conn: sa.Connection) -> int:
    """A forged decision, copied from a real one, appended after the head with made-up hashes."""
    table = DecisionRecord.__table__  # type: ignore[attr-defined]
    top = conn.execute(sa.select(sa.func.max(table.c.seq))).scalar_one()
    row = conn.execute(sa.select(table).where(table.c.seq == top)).mappings().one()
    forged = {k: v for k, v in row.items() if k != "id"}
    forged.update(
        seq=top + 1,
        decision_id=str(uuid.uuid4()),
        prev_hash=row["record_hash"],
        record_hash="0" * 64,
    )
    conn.execute(table.insert().values(**forged))
    return int(top + 1)


def _rewrite(conn: sa.Connection) -> int:
    """Change decision 10, then recompute every later hash and move the head: a consistent
    forgery. The attacker also deletes the checkpoints stored in the database."""
    start = 10
    rows = conn.execute(
        sa.select(DECISION.c.seq, DECISION.c.payload, DECISION.c.prev_hash).order_by(DECISION.c.seq)
    ).all()
    prev = None
    for seq, payload, prev_hash in rows:
        if seq < start:
            continue
        prev = prev_hash if prev is None else prev
        content = json.loads(payload)
        columns: dict[str, Any] = {}
        if seq == start:  # the forgery: a better score, in the content and its column alike
            content["score"] = columns["score"] = 0.99
        new_payload = canonical_json(content)
        digest = content_hash(new_payload)
        link = record_hash("decision", seq, prev, digest)
        conn.execute(
            DECISION.update()
            .where(DECISION.c.seq == seq)
            .values(
                payload=new_payload,
                content_hash=digest,
                prev_hash=prev,
                record_hash=link,
                **columns,
            )
        )
        prev = link
    conn.execute(HEAD.update().where(HEAD.c.chain == "decision").values(record_hash=prev))
    conn.execute(CHECKPOINTS.delete())
    return start


DRILLS = [
    ("update one decision", _update),
    ("delete one decision", _delete),
    ("insert a forged decision", _insert),
    ("rewrite the whole chain consistently", _rewrite),
]


def run(world: World, _profile: Profile, logs: Path, command: str) -> Row:
    url = world.database("tamper")
    server = Server(world.env(url), workers=2, log=logs / "tamper.log")
    server.start()
    try:
        sent = decide(
            server.base, world.keys["predictor"], world.applicants, "tamper-", DECISIONS, 20
        )
    finally:
        server.stop()
    rec = reconcile(sent, logged(url, "tamper-"))
    clean = world.verify(url)
    checkpoint_file = logs / "decision-checkpoint.json"
    signed = world.govern(
        url, "audit", "checkpoint", "--chain", "decision", "--out", str(checkpoint_file)
    )
    if signed.returncode != 0:
        raise RuntimeError(f"govern audit checkpoint failed: {signed.stderr}")

    findings = [
        f"{rec['ok_200']} decisions logged through the server, then govern stopped; the untouched "
        f"log verifies (exit {clean['exit_code']}), and a signed checkpoint of its head is "
        "exported to a file, as an operator keeps it off the database host.",
    ]
    results: list[dict[str, Any]] = []
    passed = clean["ok"]
    base = url.rsplit("/", 1)[1]
    for name, tamper in DRILLS:
        copy = world.cluster.create_database(f"{base}_{tamper.__name__.strip('_')}", base)
        engine = _engine(copy)
        try:
            with engine.begin() as conn:
                seq = tamper(conn)
        finally:
            engine.dispose()
        report = world.verify(copy, checkpoint_file)
        decision = next(c for c in report["chains"] if c["chain"] == "decision")
        problem = decision["first_problem"]
        failed_checkpoints = [c for c in report["checkpoints"] if not c.get("matches")]
        if tamper is _rewrite:
            caught = decision["ok"] and bool(failed_checkpoints) and report["exit_code"] == 1
            chains = (
                "every chain recomputes cleanly"
                if decision["ok"]
                else f"the decision chain FAILED at record {problem['seq']}: {problem['problem']}"
            )
            said = f"{chains}, and the exported checkpoint fails: " + (
                failed_checkpoints[0]["problem"] if failed_checkpoints else "nothing"
            )
        else:
            caught = (
                not decision["ok"]
                and problem is not None
                and problem["seq"] == seq
                and report["exit_code"] == 1
            )
            said = (
                f"chain decision FAILED at record {problem['seq']}: {problem['problem']}"
                if problem
                else "nothing"
            )
        passed &= caught
        results.append({"tamper": name, "seq": seq, "caught": caught, "report": report})
        findings.append(
            f"{name} (record {seq}): `govern audit verify` exit "
            f"{report['exit_code']}; {said}. {'Caught' if caught else 'NOT CAUGHT'}."
        )
    return Row(
        scenario="6. Tamper drill",
        load=f"{DECISIONS} decisions at 20 req/s, then govern stopped",
        faults="UPDATE, DELETE, INSERT, consistent rewrite of the chain (each on its own copy)",
        **counts(rec),
        chain="4 of 4 tamperings caught" if passed else "NOT ALL CAUGHT",
        passed=passed and rec["lost"] == 0,
        command=command,
        findings=findings,
        detail={"drills": results},
    )
