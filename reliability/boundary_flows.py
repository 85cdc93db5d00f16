"""Issue 16's attacks that need the server's state first: a version that failed its gate, a
rebuild of one decision, /metrics as it was before made-up names arrived, decisions to export.
Each flow sets that state up through the API, then sends its cases (see boundary.py)."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from reliability.boundary import PREDICT, Setup, attack_case
from reliability.cases import Case, send
from reliability.world import World

# More than a key's concurrent share in both worker processes together (2 each).
EXPLAIN_AT_ONCE = 5
FORMULAS = ['=HYPERLINK("http://x")', "@SUM(A1)", "+1+1", "-1+1"]
# /metrics may grow by the few new series of a known endpoint and "_unknown", not per name.
METRICS_GROWTH_LIMIT = 16 * 1024


def live_cases(
    client: httpx.Client,
    world: World,
    setup: Setup,
    spec: dict[str, Any],
    features: dict[str, Any],
    decisions: list[str],
) -> list[Case]:
    """The attacks that need the server's state first: a version that failed its gate, a
    rebuild of one decision, metrics as they were, decisions to export."""
    cases = _gate_cases(client, world, spec)
    cases += _rebuild_cases(client, world, setup, decisions[0], decisions[1])
    cases += _label_cases(client, world, setup, features)
    cases += _csv_cases(client, world, features)
    cases += _explain_cap_cases(client, world, decisions[0])
    return cases


def _auth(world: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.keys[role]}"}


def _failed_gate_version(client: httpx.Client, world: World, spec: dict[str, Any]) -> int:
    """Train credit again with a gate it cannot pass (a short fit): it registers a version
    whose gate failed."""
    params = {**spec["estimator"].get("params", {}), "max_iter": 20}
    impossible = {
        **spec,
        "gate": {"metric": "roc_auc", "threshold": 0.999},
        "estimator": {**spec["estimator"], "params": params},
    }
    started = client.post("/api/v1/runs", headers=_auth(world, "data-scientist"), json=impossible)
    if started.status_code != 202:
        raise RuntimeError(f"could not start a training run: {started.status_code} {started.text}")
    run_id = started.json()["id"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/runs/{run_id}", headers=_auth(world, "data-scientist")).json()
        if run["status"] in ("succeeded", "failed"):
            if run.get("model_version") is None:
                raise RuntimeError(f"the failed-gate training registered nothing: {run}")
            return int(run["model_version"])
        time.sleep(0.3)
    raise TimeoutError("the failed-gate training did not finish in 300 s")


def _gate_cases(client: httpx.Client, world: World, spec: dict[str, Any]) -> list[Case]:
    failed = _failed_gate_version(client, world, spec)
    path = "/api/v1/endpoints/hostile-gate"
    v1 = {"model": "credit", "version": 1}
    cases = [
        attack_case(
            f"route a canary to credit v{failed} (failed its gate)",
            "PUT",
            path,
            "data-scientist",
            json_body={"routes": [v1, {"model": "credit", "version": failed, "name": "canary"}]},
            expect=frozenset({409}),
            mentions=("promotion gate",),
        ),
        attack_case(
            f"route all traffic to credit v{failed} (failed its gate)",
            "PUT",
            path,
            "data-scientist",
            json_body={"routes": [{"model": "credit", "version": failed}]},
            expect=frozenset({409}),
            mentions=("promotion gate",),
        ),
        attack_case(
            "live route to credit v2 (staging, not production)",
            "PUT",
            path,
            "data-scientist",
            json_body={"routes": [{"model": "credit", "version": 2}]},
            expect=frozenset({409}),
            mentions=("production",),
        ),
        attack_case(
            f"shadow credit v{failed} behind v1 (allowed: a shadow answers no one)",
            "PUT",
            path,
            "data-scientist",
            json_body={"routes": [v1], "shadows": [{"model": "credit", "version": failed}]},
            expect=frozenset({200}),
        ),
    ]
    for case in cases:
        send(client, case, world.keys)
    # Archived, the same version may not even be a shadow.
    ds = _auth(world, "data-scientist")
    client.put(path, headers=ds, json={"routes": [v1]}).raise_for_status()
    client.post(
        f"/api/v1/models/credit/versions/{failed}/stage",
        headers=ds,
        json={"stage": "archived", "reason": "drill: failed its gate"},
    ).raise_for_status()
    archived = attack_case(
        f"shadow credit v{failed} once archived",
        "PUT",
        path,
        "data-scientist",
        json_body={"routes": [v1], "shadows": [{"model": "credit", "version": failed}]},
        expect=frozenset({409}),
        mentions=("archived",),
    )
    send(client, archived, world.keys)
    return [*cases, archived]


def _rebuild_cases(
    client: httpx.Client, world: World, setup: Setup, held: str, other: str
) -> list[Case]:
    """Appeals tooling holds decision ``other``; a rebuild of ``held`` is not its to read."""
    path = f"/api/v1/decisions/{held}/rebuild"
    started = client.post(path, headers=_auth(world, "data-scientist"))
    if started.status_code != 202:
        raise RuntimeError(f"could not start a rebuild: {started.status_code} {started.text}")
    rebuild = started.json()["id"]
    setup.facts["rebuild"] = {"id": rebuild, "decision_id": held}

    def same_rebuild(_status: int, text: str) -> str:
        found = json.loads(text).get("id") if text.startswith("{") else None
        return "" if found == rebuild else f"started another rebuild ({found}, not {rebuild})"

    read = f"/api/v1/rebuilds/{rebuild}"
    cases = [
        attack_case(
            "a second rebuild of the same decision returns the active one",
            "POST",
            path,
            "data-scientist",
            expect=frozenset({200, 202}),
            check=same_rebuild,
        ),
        attack_case(
            "cancel the rebuild (POST /rebuilds/{id}/cancel)",
            "POST",
            f"{read}/cancel",
            "data-scientist",
            expect=frozenset({202}),
        ),
        attack_case(
            "appeals reads another decision's rebuild id",
            "GET",
            read,
            "appeals",
            expect=frozenset({404}),
        ),
        attack_case(
            "appeals reads it with the decision it holds (a wrong one)",
            "GET",
            read,
            "appeals",
            params={"decision_id": other},
            expect=frozenset({404}),
        ),
        attack_case(
            "appeals cancels it with a wrong decision_id",
            "POST",
            f"{read}/cancel",
            "appeals",
            params={"decision_id": other},
            expect=frozenset({404}),
        ),
        attack_case(
            "appeals reads it with its own decision_id (allowed, no server paths)",
            "GET",
            read,
            "appeals",
            params={"decision_id": held},
            expect=frozenset({200}),
            never_mentions=(str(world.var_dir),),
        ),
    ]
    for case in cases:
        send(client, case, world.keys)
    return cases


def _scrape(client: httpx.Client, times: int = 8) -> list[str]:
    """/metrics from several fresh connections: each worker keeps its own registry, and a
    connection goes to whichever worker accepts it."""
    texts = []
    for _ in range(times):
        response = httpx.get(str(client.base_url.join("/metrics")), timeout=30)
        texts.append(response.text if response.status_code == 200 else "")
    return texts


LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _labels(texts: list[str]) -> set[tuple[str, str]]:
    return {pair for text in texts for pair in LABEL.findall(text)}


def _label_cases(
    client: httpx.Client, world: World, setup: Setup, features: dict[str, Any]
) -> list[Case]:
    before = _scrape(client)
    marker = setup.marker
    cases = [
        attack_case(
            f"predict to a made-up endpoint {marker}-{i} with a made-up 20 kB feature name",
            "POST",
            f"/api/v1/endpoints/{marker}-{i}/predict",
            "predictor",
            json_body={
                "subject_id": "hostile-label",
                "features": {**features, f"{marker}-key-{i}-" + "k" * 20_000: 1},
            },
            expect=frozenset({404}),
        )
        for i in range(50)
    ]
    for i in range(10):
        key = f"{marker}-key-x{i}-" + "k" * 20_000
        body: dict[str, Any] = {"subject_id": "hostile-label", "features": features}
        if i % 2:
            body["features"] = {**features, key: 1}
        else:
            body[key] = 1
        cases.append(
            attack_case(
                f"predict on credit with a made-up 20 kB {'feature' if i % 2 else 'field'} name",
                "POST",
                PREDICT,
                "predictor",
                json_body=body,
                expect=frozenset({422}),
            )
        )
    for case in cases:
        send(client, case, world.keys)
    after = _scrape(client)
    new = sorted(_labels(after) - _labels(before))
    growth = max(map(len, after)) - max(map(len, before))
    setup.facts["metrics"] = {
        "bytes_before": max(map(len, before)),
        "bytes_after": max(map(len, after)),
        "new_labels": new,
    }
    metrics = attack_case(
        "/metrics after them: no made-up label value, and hardly bigger",
        "GET",
        "/metrics",
        None,
        expect=frozenset({200}),
    )
    metrics.status = 200 if all(after) else 500
    metrics.problem = label_problems(before, after, marker, METRICS_GROWTH_LIMIT)
    metrics.answer = f"{growth:+d} bytes; new label values {sorted({v for _, v in new})}"[:140]
    return [*cases, metrics]


def _csv_cases(client: httpx.Client, world: World, features: dict[str, Any]) -> list[Case]:
    cases = [
        attack_case(
            f"a decision for subject_id {subject}",
            "POST",
            PREDICT,
            "predictor",
            json_body={"subject_id": subject, "features": features},
            expect=frozenset({200}),
        )
        for subject in FORMULAS
    ]

    cases.append(
        attack_case(
            "compliance CSV export of those decisions: every formula cell neutralised",
            "GET",
            "/api/v1/decisions",
            "compliance",
            params={"format": "csv", "endpoint": "credit"},
            expect=frozenset({200}),
            check=lambda _status, text: formula_problem(text, FORMULAS),
        )
    )
    for case in cases:
        send(client, case, world.keys)
    return cases


def _explain_cap_cases(client: httpx.Client, world: World, decision: str) -> list[Case]:
    """One key asks for more new explanations at once than its share (2 computing per process,
    2 workers): the extra ones are refused at once with 429 and Retry-After, not queued."""
    path = f"/api/v1/decisions/{decision}/explanations/anchor"
    url = str(client.base_url.join(path))

    def ask(seed: int) -> httpx.Response:
        # Each seed is a new explanation: a cached one costs nothing and is not counted.
        return httpx.get(
            url, params={"seed": str(seed)}, headers=_auth(world, "appeals"), timeout=300
        )

    with ThreadPoolExecutor(max_workers=EXPLAIN_AT_ONCE) as pool:
        answers = list(pool.map(ask, range(1, EXPLAIN_AT_ONCE + 1)))
    cases = []
    for seed, response in enumerate(answers, start=1):
        case = attack_case(
            f"appeals key: new anchor explanation (seed {seed}), {EXPLAIN_AT_ONCE} at once",
            "GET",
            path,
            "appeals",
            params={"seed": str(seed)},
            expect=frozenset({200, 429}),
        )
        case.status = response.status_code
        if response.status_code == 429 and not response.headers.get("retry-after"):
            case.problem = "429 without Retry-After"
        case.answer = response.text[:140] if response.status_code != 200 else ""
        cases.append(case)
    refused = sum(1 for r in answers if r.status_code == 429)
    summary = attack_case(
        f"{EXPLAIN_AT_ONCE} new explanations at once from one key: the key's share is enforced",
        "GET",
        path,
        "appeals",
        expect=frozenset({429}),
    )
    summary.status = 429 if refused else 200
    summary.answer = f"{refused} of {EXPLAIN_AT_ONCE} refused with 429"
    return [*cases, summary]


def formula_problem(export: str, subjects: list[str]) -> str:
    """What is wrong with a CSV export holding decisions for ``subjects`` (each starting like a
    formula): a cell exported as it was sent, or a decision missing; "" when each cell is
    neutralised with a leading single quote."""
    cells = {row.get("subject_id") for row in csv.DictReader(io.StringIO(export))}
    raw = [s for s in subjects if s in cells]
    if raw:
        return f"cells exported as formulas: {raw}"
    missing = [s for s in subjects if "'" + s not in cells]
    return f"decisions missing from the export: {missing}" if missing else ""


def label_problems(before: list[str], after: list[str], marker: str, limit: int) -> str:
    """What is wrong with /metrics after made-up names carrying ``marker`` were sent: a label
    value holding the marker (or longer than any name govern gives), or growth past ``limit``
    bytes; "" when there is neither. ``before`` and ``after`` are several scrapes each."""
    new = _labels(after) - _labels(before)
    leaked = sorted(value[:60] for _, value in new if marker in value or len(value) > 100)
    growth = max(map(len, after), default=0) - max(map(len, before), default=0)
    problems = []
    if leaked:
        problems.append(f"made-up label values: {leaked[:3]}")
    if growth > limit:
        problems.append(f"grew {growth} bytes (at most {limit})")
    return "; ".join(problems)
