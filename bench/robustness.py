"""Robustness endpoint latency over logged decisions (warm model).

The demo model and decisions, in process through the ASGI app: one decision first (not counted:
imports ART, loads and verifies the model, reads the training rows), then
``GET /decisions/{id}/robustness`` once for each of N other decisions (computed, not stored).
Beside the endpoint's latency it reports the attack's own time (``compute_ms`` in each answer:
ART HopSkipJump plus the categorical search and the replay, in process), the baseline that the
endpoint's overhead (auth, loading the logged decision, storing the result, the access trail) is
measured against.

    uv run python -m bench.robustness [--decisions 50]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from bench.explain import _summary, setup
from governance.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings, key, decisions = setup(Path(tmp), 4 * (args.decisions + 1))
        headers = {"Authorization": f"Bearer {key}"}
        timings: list[float] = []
        computing: list[float] = []
        verdicts: dict[str, int] = {}
        confirmed = 0
        with TestClient(create_app(settings)) as client:
            client.get(f"/api/v1/decisions/{decisions[0][0]}/robustness", headers=headers)
            for decision_id, _payload in decisions[1 : args.decisions + 1]:
                started = time.perf_counter()
                response = client.get(
                    f"/api/v1/decisions/{decision_id}/robustness", headers=headers
                )
                timings.append(time.perf_counter() - started)
                body: dict[str, Any] = response.json()
                if response.status_code != 200:
                    raise SystemExit(response.text)
                computing.append(body["compute_ms"] / 1000)
                verdicts[body["verdict"]] = verdicts.get(body["verdict"], 0) + 1
                confirmed += bool(body.get("flips_on_replay"))
        print(
            json.dumps(
                {
                    "robustness": _summary(timings),
                    "attack_in_process": _summary(computing),
                    "p50_ratio_endpoint_to_attack": _summary(timings)["p50_ms"]
                    / _summary(computing)["p50_ms"],
                    "verdicts": verdicts,
                    "flips_on_replay": confirmed,
                },
                indent=2,
                default=lambda v: round(v, 3),
            )
        )


if __name__ == "__main__":
    main()
