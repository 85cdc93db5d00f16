"""`govern demo`: on an empty database, a working system in one step.

A seeded synthetic loan book in a DVC repo under var/demo, a model trained from a spec and put in
production, an endpoint `credit` serving it, and a few hundred decisions sent through the real
predict path (so every later feature has something to show). Running it again changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from rich.console import Console
from sqlmodel import select

from core.auth import service as auth_service
from core.auth.models import Role
from core.auth.schemas import Principal
from core.config import Settings
from core.db import make_engine, session_factory, transaction, utcnow
from lineage import registry
from lineage import service as lineage_service
from lineage.data_sources import DataPolicy
from lineage.dvc_repo import commit_data, init_data_repo
from lineage.models import Stage
from lineage.runner import execute_run
from lineage.synthetic import applicant_features, demo_spec, generate_loans
from serving import endpoints as serving_endpoints
from serving.decoding import decode_json
from serving.models import Endpoint
from serving.outcomes import OutcomeIn, record_outcomes
from serving.predict import predict
from serving.schemas import EndpointConfigIn
from serving.state import Serving

ENDPOINT = "credit"
DEMO_BIAS = 0.35  # a known, moderate bias against sex=F, for the fairness report to find
out = Console()


def run_demo(settings: Settings, decisions: int = 300) -> bool:
    """Set up the demo; returns False when it was already there."""
    engine = make_engine(settings)
    factory = session_factory(engine)
    try:
        with transaction(factory) as session:
            if session.exec(select(Endpoint).where(Endpoint.name == ENDPOINT)).first() is not None:
                return False
        spec = _demo_data(settings)
        out.print("demo: training credit v1 from its spec")
        version = _train(settings, factory, spec)
        key_id = _serve(factory, version)
        sent = asyncio.run(_send_traffic(settings, factory, key_id, decisions)) if decisions else []
        reported = _report_outcomes(factory, sent)
        out.print(
            f"demo: endpoint {ENDPOINT} serves credit v{version}; {len(sent)} decisions logged, "
            f"{reported} with their outcome (repaid or not)"
        )
        return True
    finally:
        engine.dispose()


def _demo_data(settings: Settings) -> dict[str, Any]:
    """A DVC repo with a synthetic loan book (made once), and the spec that trains on it."""
    base = (settings.var_dir / "demo").resolve()
    repo_dir = base / "loans-repo"
    if not (repo_dir / ".dvc").exists():
        out.print(f"demo: creating a DVC repo with a synthetic loan book in {repo_dir}")
        init_data_repo(repo_dir, base / "loans-remote")
        book = generate_loans(6000, seed=1, bias=DEMO_BIAS)
        commit_data(
            repo_dir,
            "data/loans.csv",
            book.to_csv(index=False).encode(),
            "loans v1 (synthetic, seed 1)",
        )
    spec = demo_spec(
        dataset={"name": "loans", "repo": str(repo_dir), "path": "data/loans.csv", "rev": "main"}
    )
    (base / "credit-spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    return spec


def _train(settings: Settings, factory: Any, spec: dict[str, Any]) -> int:
    """Train credit from the spec and move the version to production; its version number."""
    with transaction(factory) as session:
        run = lineage_service.create_run(
            session=session,
            spec_data=spec,
            actor="demo",
            policy=DataPolicy.from_settings(settings),
        )
        run_id = run.id
    assert run_id is not None
    execute_run(settings, run_id)
    with transaction(factory) as session:
        public = lineage_service.run_public(
            session, lineage_service.get_run(session=session, run_id=run_id)
        )
        if public.model_version is None:
            raise RuntimeError(f"demo training failed: {public.error}")
        registry.change_stage(
            session=session,
            name="credit",
            version=public.model_version,
            stage=Stage.production,
            reason="demo: passed its gate",
            actor="demo",
        )
        return public.model_version


def _serve(factory: Any, version: int) -> str:
    """Put the version behind the demo endpoint; the id of a new predictor key for traffic."""
    with transaction(factory) as session:
        serving_endpoints.put_endpoint(
            session=session,
            name=ENDPOINT,
            config_in=EndpointConfigIn.model_validate(
                {"routes": [{"model": "credit", "version": version}]}
            ),
            actor="demo",
        )
        predictor = auth_service.create_key(
            session=session, name="demo traffic", role=Role.predictor, created_by="demo"
        )
        return predictor.key_id


def _report_outcomes(factory: Any, sent: list[tuple[str, int]]) -> int:
    """As a loan servicing system would: the first two thirds of the loans have an outcome."""
    known = sent[: len(sent) * 2 // 3]
    if not known:
        return 0
    observed = utcnow()
    with transaction(factory) as session:
        record_outcomes(
            session,
            [(d, OutcomeIn(outcome=repaid, observed_at=observed)) for d, repaid in known],
            "demo",
            bulk=True,
        )
    return len(known)


async def _send_traffic(
    settings: Settings, factory: Any, key_id: str, count: int
) -> list[tuple[str, int]]:
    serving = Serving.create(settings, factory)
    serving.start()
    principal = Principal(key_id=key_id, name="demo traffic", role=Role.predictor)
    applicants = generate_loans(count, seed=99, bias=DEMO_BIAS).to_dict(orient="records")
    sent: list[tuple[str, int]] = []
    try:
        for start in range(0, count, 50):
            chunk = applicants[start : start + 50]
            body = {
                "instances": [
                    {
                        "subject_id": f"applicant-{start + i:05d}",
                        "features": applicant_features(row),
                        "context": {"sex": row["sex"], "age": int(row["age"]), "channel": "demo"},
                    }
                    for i, row in enumerate(chunk)
                ]
            }
            decoded = decode_json(json.dumps(body).encode())
            decided = await predict(serving, ENDPOINT, decoded, principal, time.perf_counter())
            sent += [
                (decision.decision_id, int(row["repaid"]))
                for decision, row in zip(decided.decisions, chunk, strict=True)
            ]
    finally:
        serving.stop()
    return sent
