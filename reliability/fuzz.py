"""schemathesis over the whole OpenAPI schema, with a key of each role and with none.

Three things are counted for every generated case: a 5xx (a server error), a response that does
not match the schema (status, content type or body), and an authorization leak (a 2xx for a role
the route refuses, or for no key on a route that is not public). The target is 0 of each.
Generation is seeded (hypothesis ``derandomize``), so a run is reproducible.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.config import Settings
from core.deps import PUBLIC, declared_roles
from governance.app import create_app
from reliability.load import decide, logged, reconcile
from reliability.report import Row
from reliability.scenarios import Profile
from reliability.server import Server
from reliability.world import World

CHECKS = [response_schema_conformance, content_type_conformance, status_code_conformance]
ANONYMOUS = "no key"


def _bound(check: Any, *args: Any) -> Any:
    """A one-argument test for @given (which takes no partials and no defaults)."""

    def test(case: Any) -> None:
        check(case, *args)

    return test


def run(world: World, profile: Profile, logs: Path, command: str) -> Row:
    url = world.database("fuzz")
    server = Server(world.env(url), workers=2, log=logs / "fuzz.log")
    server.start()
    declared = declared_roles(create_app(Settings(var_dir=logs / "app", database_url=url)))
    principals: dict[str, str | None] = {**world.keys, ANONYMOUS: None}
    cases = 0
    statuses: Counter[int] = Counter()
    server_errors: list[str] = []
    violations: dict[str, str] = {}
    leaks: list[str] = []
    try:
        seeded = decide(
            server.base, world.keys["predictor"], world.applicants, "fuzz-seed-", 10, 10
        )
        schema = schemathesis.openapi.from_url(f"{server.base}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]

        def check(case: Any, who: str, headers: dict[str, str], allowed: Any, line: str) -> None:
            nonlocal cases
            if who == ANONYMOUS and case.headers:
                case.headers.pop("Authorization", None)
            response = case.call(base_url=server.base, headers=headers, timeout=60)
            cases += 1
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                server_errors.append(
                    f"{line} as {who}: {response.status_code} {response.text[:200]}"
                )
            if (
                200 <= response.status_code < 300
                and allowed != PUBLIC
                and (who == ANONYMOUS or (who != "admin" and who not in (allowed or ())))
            ):
                leaks.append(f"{line} as {who}: {response.status_code}")
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except (Exception, FailureGroup) as exc:  # FailureGroup is a BaseExceptionGroup
                violations.setdefault(f"{line} {response.status_code}", str(exc).strip()[:400])

        for operation in operations:
            line = f"{operation.method.upper()} {operation.path}"
            allowed = declared.get(line)
            for who, token in principals.items():
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    test = given(case=operation.as_strategy(generation_mode=mode))(
                        _bound(check, who, headers, allowed, line)
                    )
                    try:
                        settings(
                            max_examples=profile.fuzz_examples,
                            deadline=None,
                            database=None,
                            derandomize=True,
                            phases=[Phase.explicit, Phase.generate],
                            suppress_health_check=list(HealthCheck),
                        )(test)()
                    except Unsatisfiable:  # no invalid input exists (an operation without inputs)
                        continue
    finally:
        server.stop()
    rec = reconcile(seeded, logged(url, "fuzz-seed-"))
    report = world.verify(url)
    (logs / "fuzz-findings.txt").write_text(
        "\n".join(
            [
                "5xx:",
                *server_errors,
                "",
                "schema:",
                *(f"{k}: {v}" for k, v in violations.items()),
                "",
                "leaks:",
                *leaks,
            ]
        )
    )
    passed = not server_errors and not violations and not leaks and report["ok"]
    return Row(
        scenario="4. Fuzzing",
        load=f"schemathesis {schemathesis.__version__}: {len(operations)} operations x "
        f"{len(principals)} principals x positive and negative data, "
        f"{profile.fuzz_examples} examples each",
        faults="generated requests, valid and invalid",
        requests=cases,
        ok_200=statuses.get(200, 0),
        logged=rec["decisions_logged"],
        lost=rec["lost"],
        chain="yes" if report["ok"] else "NO",
        passed=passed,
        command=command,
        findings=[
            f"{cases:,} cases generated and sent; answers: "
            + ", ".join(f"{code} x {n:,}" for code, n in sorted(statuses.items()))
            + ".",
            f"Server errors (5xx): {len(server_errors)}"
            + (f": {server_errors[:3]}" if server_errors else "."),
            f"Responses that do not match the schema: {len(violations)}"
            + (": " + "; ".join(list(violations)[:8]) if violations else "."),
            f"Authorization leaks (a 2xx for a role the route refuses, or for no key): "
            f"{len(leaks)}" + (f": {leaks[:5]}" if leaks else "."),
            f"`govern audit verify` after fuzzing: exit {report['exit_code']}.",
        ],
        detail={
            "statuses": dict(statuses),
            "server_errors": server_errors,
            "violations": violations,
            "leaks": leaks,
        },
    )
