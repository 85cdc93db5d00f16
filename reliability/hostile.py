"""Hostile input against the live server: every case must get a clear 4xx, nothing may be lost,
and nothing may run that should not.

The cases: deeply nested JSON and YAML, huge strings and bodies, invalid UTF-8, NaN, infinities and
huge numbers, SQL metacharacters in every query filter of every route, path traversal in dataset
and artifact names, YAML specs with Python object tags, estimators outside the allowlist, a
replaced artifact file, expired, revoked and forged keys, a key of every wrong role on every
route, and the trust-boundary attacks of issue 16 (reliability/boundary.py and boundary_flows.py).
"""

from __future__ import annotations

import json
import re
import tempfile
import uuid
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from core.config import Settings
from core.db import utcnow
from core.deps import PUBLIC, declared_roles
from governance.app import create_app
from reliability import boundary, boundary_flows
from reliability.cases import Case, send
from reliability.load import decide, logged, reconcile
from reliability.report import Row
from reliability.scenarios import Profile
from reliability.server import Server
from reliability.world import World, scalar

FORGED_SQL = "gov_' OR 1=1 --_x"
SQL_PROBES = ["' OR '1'='1", "'; DROP TABLE decision; --", '" OR 1=1 --', "%' UNION SELECT 1--"]
PWNED = Path(tempfile.gettempdir()) / f"govern-pwned-{uuid.uuid4().hex[:8]}"
# A rejected predict is stored as a bounded summary (serving.summary: at most MAX_VALUES values,
# each string and key clipped); no hostile body here comes near this, however large it was.
MAX_REJECTION_RECORD = 64 * 1024


def _nested(depth: int) -> bytes:
    return b'{"features": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


def _body_cases(features: dict[str, Any]) -> list[Case]:
    predict = "/api/v1/endpoints/credit/predict"
    good = json.dumps({"subject_id": "hostile-x", "features": features}).encode()
    cases = [
        Case(
            "nesting and size",
            "nested JSON object, depth 100,000",
            "POST",
            predict,
            "predictor",
            content=_nested(100_000),
        ),
        Case(
            "nesting and size",
            "nested JSON array, depth 200,000",
            "POST",
            predict,
            "predictor",
            content=b'{"features": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
        ),
        Case(
            "nesting and size",
            "nested JSON in an outcome",
            "POST",
            "/api/v1/outcomes",
            "outcomes",
            content=_nested(50_000),
        ),
        Case(
            "nesting and size",
            "nested JSON in a v2 inference body",
            "POST",
            "/v2/models/credit/infer",
            "predictor",
            content=_nested(50_000),
        ),
        Case(
            "nesting and size",
            "nested YAML spec, depth 100,000",
            "POST",
            "/api/v1/runs",
            "data-scientist",
            content=b"[" * 100_000 + b"]" * 100_000,
            content_type="application/yaml",
        ),
        Case(
            "nesting and size",
            "a 500,000-character subject_id",
            "POST",
            predict,
            "predictor",
            json_body={"subject_id": "x" * 500_000, "features": features},
        ),
        Case(
            "nesting and size",
            "a 100,000-character feature value",
            "POST",
            predict,
            "predictor",
            json_body={"features": {**features, "purpose": "y" * 100_000}},
        ),
        Case(
            "nesting and size",
            "a 20 MB body",
            "POST",
            predict,
            "predictor",
            content=b'{"features": {"x": "' + b"z" * 20_000_000 + b'"}}',
        ),
        Case(
            "nesting and size",
            "a 20 MB body without Content-Length (chunked)",
            "POST",
            predict,
            "predictor",
            content=b"CHUNKED",
        ),
        Case(
            "nesting and size",
            "a batch of 100,000 instances",
            "POST",
            predict,
            "predictor",
            content=b'{"instances": [' + b",".join([b'{"features": {}}'] * 100_000) + b"]}",
        ),
        Case(
            "encoding",
            "invalid UTF-8 in a feature",
            "POST",
            predict,
            "predictor",
            content=good.replace(b"hostile-x", b"hostile-\xff\xfe"),
        ),
        Case(
            "encoding",
            "invalid UTF-8 in a YAML spec",
            "POST",
            "/api/v1/runs",
            "data-scientist",
            content=b"model: \xff\xfe\n",
            content_type="application/yaml",
        ),
        # JSON may arrive as UTF-16 (RFC 8259 readers may accept it); it is decoded, not garbled.
        Case(
            "encoding",
            "a UTF-16 body (decoded and accepted, or refused)",
            "POST",
            predict,
            "predictor",
            content=good.decode().encode("utf-16"),
            expect=frozenset({200, 400, 415, 422}),
        ),
        Case("encoding", "an empty body", "POST", predict, "predictor", content=b""),
        Case(
            "encoding",
            "NUL (\\u0000) in a subject_id",
            "POST",
            predict,
            "predictor",
            json_body={"subject_id": "a\u0000b", "features": features},
        ),
        Case(
            "encoding",
            "NUL in a feature value",
            "POST",
            predict,
            "predictor",
            json_body={"features": {**features, "purpose": "car\u0000"}},
        ),
        Case(
            "encoding",
            "NUL in a key name",
            "POST",
            "/api/v1/keys",
            "admin",
            json_body={"name": "evil\u0000", "role": "appeals"},
        ),
        Case(
            "encoding",
            "NUL in a dataset name",
            "POST",
            "/api/v1/datasets",
            "data-scientist",
            json_body={"name": "x\u0000", "repo": tempfile.gettempdir(), "path": "x.csv"},
        ),
        Case(
            "encoding",
            "NUL in a stage-change reason",
            "POST",
            "/api/v1/models/credit/versions/2/stage",
            "data-scientist",
            json_body={"stage": "archived", "reason": "\u0000"},
        ),
        Case(
            "encoding",
            "NUL in a query filter",
            "GET",
            "/api/v1/decisions",
            "compliance",
            params={"subject_id": "a\u0000"},
        ),
        Case("encoding", "not JSON at all", "POST", predict, "predictor", content=b"<xml/>"),
    ]
    numeric = next(k for k, v in features.items() if isinstance(v, int | float))
    for literal in (
        "NaN",
        "Infinity",
        "-Infinity",
        "1e999",
        "-1e999",
        "1" + "0" * 5000,
        "1e308",
        "123456789012345678901234567890",
    ):
        body = json.dumps({"subject_id": "hostile-n", "features": {**features, numeric: 0}})
        body = body.replace(f'"{numeric}": 0', f'"{numeric}": {literal}')
        expect = frozenset({422}) if literal not in ("1e308",) else frozenset({200, 422})
        cases.append(
            Case(
                "numbers",
                f"{numeric} = {literal[:24]}",
                "POST",
                predict,
                "predictor",
                content=body.encode(),
                expect=expect,
            )
        )
    cases.append(
        Case(
            "numbers",
            "NaN in an outcome",
            "POST",
            "/api/v1/outcomes",
            "outcomes",
            content=b'{"outcomes": [{"decision_id": "x", "outcome": NaN}]}',
        )
    )
    return cases


def _sql_cases(spec: dict[str, Any]) -> list[Case]:
    """Every string query parameter of every GET route, with SQL metacharacters."""
    cases = []
    for path, operations in spec["paths"].items():
        op = operations.get("get")
        if op is None or "{" in path:
            continue
        for param in op.get("parameters", []):
            if param.get("in") != "query":
                continue
            for probe in SQL_PROBES:
                cases.append(
                    Case(
                        "SQL metacharacters",
                        f"{path}?{param['name']}={probe}",
                        "GET",
                        path,
                        "admin",
                        params={param["name"]: probe},
                        expect=frozenset({200, 400, 404, 409, 422}),
                    )
                )
    return cases


def _traversal_cases(repo: str) -> list[Case]:
    refused = frozenset({400, 404, 409, 422})
    datasets = [
        ("dataset repo ../../../../etc", {"repo": "../../../../etc", "path": "passwd"}),
        (
            "dataset path ../../../../etc/passwd",
            {"repo": repo, "path": "../../../../../../etc/passwd"},
        ),
        ("dataset repo /etc, path shadow", {"repo": "/etc", "path": "shadow"}),
        ("dataset repo file:///etc", {"repo": "file:///etc", "path": "passwd"}),
    ]
    cases = [
        Case(
            "path traversal",
            name,
            "POST",
            "/api/v1/datasets",
            "data-scientist",
            json_body={"name": "evil", **where},
            expect=refused,
        )
        for name, where in datasets
    ]
    cases += [
        Case(
            "path traversal",
            "model name ..%2F..%2Fetc in a registration",
            "POST",
            "/api/v1/models/..%2F..%2Fetc/versions",
            "data-scientist",
            json_body={},
            expect=frozenset({404, 422}),
        ),
        Case(
            "path traversal",
            "model name with ../ in a lineage read",
            "GET",
            "/api/v1/models/credit/versions/1/../../../../etc/passwd",
            "data-scientist",
            expect=frozenset({404, 422}),
        ),
        Case(
            "path traversal",
            "artifact sha256 ../../etc/passwd in a registration",
            "POST",
            "/api/v1/models/evil/versions",
            "data-scientist",
            json_body={"artifact": {"sha256": "../../../../etc/passwd", "content_base64": "AA=="}},
            expect=frozenset({400, 404, 409, 422}),
        ),
        Case(
            "path traversal",
            "endpoint name ../credit",
            "PUT",
            "/api/v1/endpoints/..%2Fcredit",
            "data-scientist",
            json_body={"routes": [{"model": "credit", "version": 1}]},
            expect=frozenset({404, 422}),
        ),
    ]
    return cases


def _spec_cases(spec_text: str) -> list[Case]:
    runs = "/api/v1/runs"
    base = json.loads(spec_text)
    tags = [
        f"!!python/object/apply:os.system ['touch {PWNED}']",
        f"model: !!python/object/apply:os.system ['touch {PWNED}']",
        "model: !!python/name:os.system",
        f"model: !<tag:yaml.org,2002:python/object/apply:os.system> ['touch {PWNED}']",
        "model: !!binary aGVsbG8=\ndataset: !!set {a, b}",
    ]
    cases = [
        Case(
            "YAML object tags",
            f"spec: {t[:50]}",
            "POST",
            runs,
            "data-scientist",
            content=t.encode(),
            content_type="application/yaml",
        )
        for t in tags
    ]
    for path in (
        "os.system",
        "subprocess.Popen",
        "builtins.eval",
        "pickle.loads",
        "sklearn.utils._testing.assert_raise_message",
        "__import__",
    ):
        bad = json.loads(json.dumps(base))
        bad["estimator"]["class"] = path
        cases.append(
            Case(
                "estimator allowlist",
                f"estimator class {path}",
                "POST",
                runs,
                "data-scientist",
                json_body=bad,
            )
        )
    return cases


def _key_cases(expired: str, revoked: str) -> list[Case]:
    who = "/api/v1/whoami"
    unauth = frozenset({401})
    return [
        Case("keys", "an expired key", "GET", who, token=expired, expect=unauth),
        Case("keys", "a revoked key", "GET", who, token=revoked, expect=unauth),
        Case("keys", "no key", "GET", who, role=None, expect=unauth),
        Case(
            "keys",
            "a forged key (right shape, wrong secret)",
            "GET",
            who,
            token="gov_0123456789ab_" + "A" * 43,
            expect=unauth,
        ),
        Case("keys", "SQL in the key", "GET", who, token=FORGED_SQL, expect=unauth),
        Case(
            "keys",
            "a 100 kB key",
            "GET",
            who,
            token="gov_" + "k" * 100_000,
            expect=frozenset({401, 413, 431, 400}),
        ),
    ]


def console_sessions(client: httpx.Client, keys: dict[str, str]) -> dict[str, str]:
    """Each role signed in to the web console as a browser would: role -> its Cookie header."""
    cookies = {}
    for role, key in keys.items():
        form = client.get("/console/sign-in")
        token = re.search(r'name="form_token" value="([^"]*)"', form.text)
        if form.status_code != 200 or token is None:
            raise RuntimeError(f"no console sign-in form: {form.status_code}")
        signed = client.post(
            "/console/sign-in",
            data={"api_key": key, "form_token": token.group(1)},
            follow_redirects=False,
        )
        session = signed.cookies.get("govern_session")
        if signed.status_code != 303 or not session:
            raise RuntimeError(f"could not sign {role} in to the console: {signed.status_code}")
        cookies[role] = f"govern_session={session}"
    client.cookies.clear()  # the cases send their own credentials
    return cookies


def _role_cases(
    declared: dict[str, Any],
    decision_id: str,
    key_ids: dict[str, str],
    sessions: dict[str, str],
) -> list[Case]:
    values = {
        "name": "credit",
        "version": "1",
        "decision_id": decision_id,
        "rebuild_id": "1",
        "case_id": "00000000-0000-4000-8000-000000000000",
        "experiment_id": "00000000-0000-4000-8000-000000000000",
        "promotion_id": "00000000-0000-4000-8000-000000000000",
        "search_id": "00000000-0000-4000-8000-000000000000",
        "run_id": "1",
        "dataset_id": "1",
        "key_id": key_ids["predictor"],
    }
    cases = []
    roles = sorted(key_ids)
    for line, allowed in sorted(declared.items()):
        if allowed == PUBLIC or allowed is None:
            continue
        method, template = line.split(" ", 1)
        if method == "HEAD":
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
        body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
        # A console page takes a session cookie, never a bearer key: without a session a page
        # is sent to sign in (303) and a form is refused (401); a wrong role's session gets 403.
        no_session = frozenset({303} if method == "GET" else {401})
        console = path.startswith("/console")
        for role in roles:
            if role == "admin" or role in allowed:
                continue
            cases.append(
                Case(
                    "wrong role",
                    f"{role}{' session' if console else ''} on {line}",
                    method,
                    path,
                    None if console else role,
                    cookie=sessions[role] if console else None,
                    json_body=body,
                    expect=frozenset({403}),
                )
            )
        cases.append(
            Case(
                "wrong role",
                f"no key on {line}",
                method,
                path,
                None,
                json_body=body,
                expect=no_session if console else frozenset({401}),
            )
        )
    return cases


def run(world: World, _profile: Profile, logs: Path, command: str) -> Row:
    url = world.database("hostile")
    settings = world.settings(url)
    # An expired key and a revoked one, made as an operator would (then time passes).
    from core.auth import service as auth_service
    from core.auth.models import Role
    from core.db import make_engine, session_factory, transaction

    engine = make_engine(settings)
    with transaction(session_factory(engine)) as session:
        expired = auth_service.create_key(
            session=session,
            name="short-lived",
            role=Role.compliance,
            created_by="drill",
            expires_in_days=1,
        )
        revoked = auth_service.create_key(
            session=session, name="to revoke", role=Role.compliance, created_by="drill"
        )
    keys_table = sa.table("api_key", sa.column("key_id"), sa.column("expires_at"))
    with engine.begin() as conn:
        conn.execute(
            keys_table.update()
            .where(keys_table.c.key_id == expired.key_id)
            .values(expires_at=utcnow() - timedelta(hours=1))
        )
    engine.dispose()

    spec_text = (world.var_dir / "demo" / "credit-spec.json").read_text()
    spec = json.loads(spec_text)
    features = world.applicants[0]
    setup = boundary.prepare(world, PWNED, spec["dataset"])
    # credit v2's artifact is altered on disk before the server starts: it must never load it.
    artifact = _artifact_path(world, url, 2)
    _replace(artifact)
    server = Server(world.env(url), workers=2, log=logs / "hostile.log")
    try:
        server.start()
        seeded = decide(
            server.base, world.keys["predictor"], world.applicants, "hostile-seed-", 10, 10
        )
        held = [s.decisions[0]["decision_id"] for s in seeded[:2]]
        with httpx.Client(base_url=server.base) as client:
            revoke = client.delete(
                f"/api/v1/keys/{revoked.key_id}",
                headers={"Authorization": f"Bearer {world.keys['admin']}"},
            )
            if revoke.status_code >= 300:
                raise RuntimeError(f"could not revoke a key: {revoke.status_code} {revoke.text}")
            app = create_app(Settings(var_dir=logs / "app", database_url=url))
            openapi = app.openapi()
            cases = (
                _body_cases(features)
                + _sql_cases(openapi)
                + _traversal_cases(spec["dataset"]["repo"])
                + _spec_cases(spec_text)
                + _key_cases(expired.key, revoked.key)
                + _role_cases(
                    declared_roles(app),
                    held[0],
                    world.key_ids,
                    console_sessions(client, world.keys),
                )
                + boundary.request_cases(setup, spec, features)
            )
            before, rejected_before = _decisions(url), _rejections(url)
            for case in cases:
                send(client, case, world.keys)
            cases += boundary_flows.live_cases(client, world, setup, spec, features, held)
            cases.append(_replaced_artifact(client, world))
            after = _decisions(url)
    finally:
        server.stop()
        _restore(artifact)
        setup.close()
    boundary_findings, boundary_ok = boundary.post_checks(setup, url, cases)
    rejections_findings, rejections_ok = _reconcile_rejections(url, rejected_before, cases)
    rec = reconcile(seeded, logged(url, "hostile-seed-"))
    report = world.verify(url)
    by_category: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        by_category[case.category].append(case)
    failures = [c for c in cases if not c.passed]
    server_errors = [c for c in cases if c.status is not None and c.status >= 500]
    ran = PWNED.exists()
    runs = sa.table("training_run", sa.column("spec"))
    spec_text_col = sa.cast(runs.c.spec, sa.Text)
    evil_runs = scalar(
        url,
        sa.select(sa.func.count())
        .select_from(runs)
        .where(spec_text_col.contains("os.system") | spec_text_col.contains("subprocess")),
    )
    accepted = sum(1 for c in cases if c.status == 200 and c.path.endswith("/predict"))
    findings = [
        f"{len(cases)} hostile requests; {len(cases) - len(failures)} got the expected answer, "
        f"{len(server_errors)} got a 5xx.",
    ]
    for category, items in by_category.items():
        statuses = sorted({str(c.status) for c in items})
        bad = [c for c in items if not c.passed]
        findings.append(
            f"{category}: {len(items)} cases, answers {', '.join(statuses)}"
            + (
                "; UNEXPECTED: "
                + "; ".join(f"{c.name} -> {c.status} ({c.answer})" for c in bad[:6])
                if bad
                else "; all as expected."
            )
        )
    findings += [
        f"Live decisions before the hostile cases {before}, after {after}, with {accepted} "
        f"hostile predict(s) accepted: "
        f"{'nothing else added, nothing lost' if after == before + accepted else 'CHANGED'}.",
        f"YAML object tags and the skops upload ran nothing: {PWNED} "
        f"{'EXISTS' if ran else 'was never created'}; training runs with a forbidden estimator "
        f"stored: {evil_runs}.",
        *rejections_findings,
        *boundary_findings,
        f"The {rec['ok_200']} decisions made before the cases are all in the log "
        f"({rec['lost']} lost); `govern audit verify`: exit {report['exit_code']}.",
    ]
    passed = (
        not failures
        and not ran
        and after == before + accepted
        and rec["lost"] == 0
        and report["ok"]
        and evil_runs == 0
        and boundary_ok
        and rejections_ok
    )
    return Row(
        scenario="5. Hostile input",
        load=f"{len(cases)} hostile requests, one at a time (5 at once for a key's share of "
        "explanations), 2 workers",
        faults="nested, huge, malformed and hostile bodies; SQL in filters; traversal; YAML tags; "
        "estimator paths; a replaced artifact; expired, revoked and forged keys; wrong roles; "
        "issue 16's attacks (code-running upload, alias bombs and 200 MB bodies before the key "
        "check, lone surrogates, failed-gate routes, made-up labels, dataset URLs and md5 "
        "traversal, estimator cost, rebuild ids, CSV formulas)",
        requests=len(cases) + len(seeded),
        ok_200=rec["ok_200"] + sum(1 for c in cases if c.status == 200),
        logged=rec["decisions_logged"],
        lost=rec["lost"],
        chain=_chain_text(report),
        passed=passed,
        command=command,
        findings=findings,
        detail={"cases": [c.summary() for c in cases]},
    )


def _chain_text(report: dict[str, Any]) -> str:
    return "yes" if report["ok"] else "NO"


def _decisions(url: str) -> int:
    table = sa.table("decision", sa.column("kind"))
    return scalar(
        url, sa.select(sa.func.count()).select_from(table).where(table.c.kind == "decision")
    )


def _rejections(url: str) -> dict[str, int]:
    """Rejected predict attempts in the log: decision id -> the length of the stored record."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT decision_id, length(coalesce(payload, '')) AS size FROM decision "
                    "WHERE kind = 'rejected'"
                )
            ).all()
    finally:
        engine.dispose()
    return {row.decision_id: int(row.size) for row in rows}


def _reconcile_rejections(
    url: str, before: dict[str, int], cases: list[Case]
) -> tuple[list[str], bool]:
    """Every refused predict whose answer named a rejection id is logged as a rejection (not a
    decision), and nothing else was; each stored record is a bounded summary of the request."""
    after = _rejections(url)
    added = {k: v for k, v in after.items() if k not in before}
    told = {c.rejection_id for c in cases if c.rejection_id}
    missing, unexplained = told - set(added), set(added) - told
    largest = max(added.values(), default=0)
    ok = not missing and not unexplained and largest <= MAX_REJECTION_RECORD
    return [
        f"Refused predicts logged as rejections: {len(added)} added, {len(told)} answers named "
        f"one; {len(missing)} named but not logged, {len(unexplained)} logged but never named; "
        f"the largest stored record is {largest:,} bytes (bounded summaries; the limit checked "
        f"is {MAX_REJECTION_RECORD:,})."
    ], ok


def _artifact_path(world: World, url: str, version: int) -> Path:
    from lineage.artifacts import ArtifactStore

    table = sa.table("model_version", sa.column("version"), sa.column("artifact_sha256"))
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            sha = conn.execute(
                sa.select(table.c.artifact_sha256).where(table.c.version == version)
            ).scalar_one()
    finally:
        engine.dispose()
    return ArtifactStore(world.settings(url).artifacts).path_for(sha)


def _backup(path: Path) -> Path:
    return path.with_name(path.name + ".drill-backup")


def _replace(path: Path) -> None:
    """Overwrite an artifact file in place, keeping a backup beside it."""
    original = path.read_bytes()
    _backup(path).write_bytes(original)
    path.chmod(0o644)
    path.write_bytes(original[:-16] + b"\x00" * 16)


def _replaced_artifact(client: httpx.Client, world: World) -> Case:
    """credit v2's artifact was overwritten before this server started: a route to it must be
    refused, never served from the altered bytes. v2 is in staging, so it may only be a canary
    behind the production v1; the canary takes all but a millionth of the traffic."""
    route = Case(
        "replaced artifact",
        "an endpoint routed to the replaced artifact",
        "PUT",
        "/api/v1/endpoints/tampered",
        "data-scientist",
        json_body={
            "routes": [
                {"model": "credit", "version": 1, "weight": 0.000001},
                {"model": "credit", "version": 2, "weight": 1_000_000, "name": "canary"},
            ]
        },
        expect=frozenset({200, 409}),
    )
    send(client, route, world.keys)
    predict = Case(
        "replaced artifact",
        "predict on a route to the replaced artifact",
        "POST",
        "/api/v1/endpoints/tampered/predict",
        "predictor",
        json_body={"subject_id": "hostile-tampered", "features": world.applicants[0]},
        expect=frozenset({404, 409}),
    )
    send(client, predict, world.keys)
    predict.name += f" (the endpoint change answered {route.status})"
    return predict


def _restore(path: Path) -> None:
    backup = _backup(path)
    if backup.exists():
        path.write_bytes(backup.read_bytes())
        path.chmod(0o444)
        backup.unlink()
