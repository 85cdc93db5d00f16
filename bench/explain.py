"""Explanation benchmark: each explain endpoint over logged decisions, and SHAP against shap.

One run, one process, the demo model (HistGradientBoosting behind a ColumnTransformer) and
denied decisions logged by the demo's traffic (the appeals case: counterfactuals search for an
approval). The model is warm: one decision (not counted) is
explained with every method first, which loads the verified artifact, reads the training data
version through DVC and fits the explainers. Then, for each of N other decisions, every endpoint
is called once through the ASGI app (in process, no network): SHAP (computed, then served from
storage), reasons, anchor, counterfactuals (k=3) and replay.

The SHAP baseline runs side by side, per decision, on the same rows: ``shap.TreeExplainer`` of
the same fitted estimator, built once, called on the row after the Pipeline's own preprocessing
(``preprocess.transform`` + ``shap_values``), which is the least any caller of shap must do.

    uv run python -m bench.explain [--decisions 200]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from bench.serving import _pct
from core import migrate
from core.auth import service as auth_service
from core.auth.models import Role
from core.config import Settings
from core.db import make_engine, session_factory, transaction
from governance.app import create_app
from governance.demo import run_demo
from lineage import registry
from lineage.artifacts import ArtifactStore
from lineage.input_schema import InputSchema, to_frame
from serving.models import DecisionRecord


def _summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": _pct(values, 50), "p99_ms": _pct(values, 99)}


def setup(base: Path, decisions: int) -> tuple[Settings, str, list[tuple[str, dict[str, Any]]]]:
    settings = Settings(var_dir=base, environment="test")
    migrate.upgrade(settings)
    run_demo(settings, decisions=decisions)
    engine = make_engine(settings)
    table = DecisionRecord.__table__  # type: ignore[attr-defined]
    with transaction(session_factory(engine)) as session:
        key = auth_service.create_key(
            session=session, name="bench", role=Role.appeals, created_by="bench"
        ).key
        rows = session.execute(
            sa.select(table.c.decision_id, table.c.payload)
            .where(table.c.kind == "decision")
            .order_by(table.c.seq)
        ).all()
    engine.dispose()
    logged = [(r.decision_id, json.loads(r.payload)) for r in rows]
    return settings, key, [(i, p) for i, p in logged if p["label"] == 0]


def direct_shap(settings: Settings, model: dict[str, Any]) -> Any:
    engine = make_engine(settings)
    with transaction(session_factory(engine)) as session:
        _m, version = registry.get_version(
            session=session, name=model["name"], version=model["version"]
        )
        schema = InputSchema.from_document(version.input_schema)
    engine.dispose()
    import shap

    pipeline = ArtifactStore(settings.artifacts).load_model(model["sha256"])
    explainer = shap.TreeExplainer(pipeline.named_steps["model"])
    preprocess = pipeline.named_steps["preprocess"]

    def call(features: dict[str, Any]) -> Any:
        return explainer.shap_values(preprocess.transform(to_frame(schema, [features])))

    return call


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings, key, decisions = setup(Path(tmp), 4 * (args.decisions + 1))
        if len(decisions) < args.decisions + 1:
            raise SystemExit(f"only {len(decisions)} denied decisions; raise the traffic")
        headers = {"Authorization": f"Bearer {key}"}
        warm_id, warm = decisions[0]
        measured = decisions[1 : args.decisions + 1]
        timings: dict[str, list[float]] = {
            name: []
            for name in (
                "shap_direct",
                "shap",
                "shap_stored",
                "reasons",
                "anchor",
                "counterfactual",
                "replay",
            )
        }
        direct = direct_shap(settings, warm["model"])
        with TestClient(create_app(settings)) as client:

            def call(name: str, method: str, path: str) -> dict[str, Any]:
                started = time.perf_counter()
                response = client.request(method, path, headers=headers)
                timings[name].append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise SystemExit(f"{path}: {response.status_code} {response.text}")
                body: dict[str, Any] = response.json()
                return body

            base = "/api/v1/decisions/{}"
            started = time.perf_counter()
            for what in ("explanations/shap", "explanations/anchor", "explanations/counterfactual"):
                client.get(f"{base.format(warm_id)}/{what}", headers=headers)
            warm_up_s = time.perf_counter() - started
            for values in timings.values():
                values.clear()
            flips = confirmed = 0
            for i, (decision_id, payload) in enumerate(measured):
                path = base.format(decision_id)
                started = time.perf_counter()
                direct(payload["features"])
                timings["shap_direct"].append(time.perf_counter() - started)
                call("shap", "GET", f"{path}/explanations/shap")
                call("shap_stored", "GET", f"{path}/explanations/shap")
                call("reasons", "GET", f"{path}/reasons")
                call("anchor", "GET", f"{path}/explanations/anchor")
                found = call("counterfactual", "GET", f"{path}/explanations/counterfactual")
                flips += len(found["counterfactuals"])
                confirmed += sum(1 for c in found["counterfactuals"] if c["confirmed"])
                call("replay", "POST", f"{path}/replay")
                if (i + 1) % 25 == 0:
                    print(f"{i + 1}/{len(measured)} decisions", flush=True)
        results: dict[str, Any] = {name: _summary(values) for name, values in timings.items()}
        results["warm_up_s"] = warm_up_s
        results["counterfactuals_found"] = flips
        results["counterfactuals_confirmed"] = confirmed
        results["shap_ratio_to_direct_p50"] = round(
            results["shap"]["p50_ms"] / results["shap_direct"]["p50_ms"], 2
        )
        results["shap_ratio_to_direct_p99"] = round(
            results["shap"]["p99_ms"] / results["shap_direct"]["p99_ms"], 2
        )
        print(json.dumps(results, indent=2, default=lambda v: round(v, 3)))


if __name__ == "__main__":
    main()
