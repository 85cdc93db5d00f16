"""The drills' world: a migrated database with the demo model (credit v1), a second version
(credit v2, another seed) for canary and shadow routes, four endpoints, and a key for every role.

It is built once into a template database; every scenario gets its own copy (CREATE DATABASE ...
TEMPLATE), so one scenario's faults and tampering never leak into another's figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core import migrate
from core.auth import service as auth_service
from core.auth.models import Role
from core.config import Settings
from core.db import make_engine, session_factory, transaction
from governance.demo import run_demo
from lineage import registry
from lineage import service as lineage_service
from lineage.models import Stage
from lineage.runner import execute_run
from lineage.synthetic import applicant_features, demo_spec, generate_loans
from reliability.cluster import Cluster
from serving import endpoints as serving_endpoints
from serving.schemas import EndpointConfigIn

TEMPLATE = "govern_reliability_template"

# endpoint -> its configuration: a plain route, a 90/10 canary, a shadow, and a sticky A/B test.
ENDPOINTS: dict[str, dict[str, Any]] = {
    "credit": {"routes": [{"model": "credit", "version": 1}]},
    "credit-canary": {
        "routes": [
            {"model": "credit", "version": 1, "weight": 9},
            {"model": "credit", "version": 2, "weight": 1, "name": "canary"},
        ]
    },
    "credit-shadow": {
        "routes": [{"model": "credit", "version": 1}],
        "shadows": [{"model": "credit", "version": 2}],
    },
    "credit-ab": {
        "routes": [
            {"model": "credit", "version": 1, "name": "a"},
            {"model": "credit", "version": 2, "name": "b"},
        ],
        "sticky": True,
    },
}


@dataclass
class World:
    cluster: Cluster
    var_dir: Path
    keys: dict[str, str] = field(default_factory=dict)  # role -> bearer token
    key_ids: dict[str, str] = field(default_factory=dict)
    applicants: list[dict[str, Any]] = field(default_factory=list)

    def database(self, scenario: str) -> str:
        """A fresh copy of the template for one scenario; returns its URL."""
        return self.cluster.create_database(f"govern_{scenario}_{uuid.uuid4().hex[:6]}", TEMPLATE)

    def settings(self, url: str) -> Settings:
        return Settings(var_dir=self.var_dir, database_url=url)

    def env(self, url: str, **extra: str) -> dict[str, str]:
        return {
            "GOV_DATABASE_URL": url,
            "GOV_VAR_DIR": str(self.var_dir),
            "GOV_LOG_LEVEL": "warning",
            **extra,
        }

    def govern(self, url: str, *args: str) -> subprocess.CompletedProcess[str]:
        """The ``govern`` CLI against one scenario's database, exactly as an operator runs it."""
        return subprocess.run(
            [sys.executable, "-m", "governance.cli", *args],
            env={**os.environ, **self.env(url)},
            capture_output=True,
            text=True,
            check=False,
        )

    def verify(self, url: str, *checkpoints: Path) -> dict[str, Any]:
        args = ["audit", "verify", "--json"]
        for path in checkpoints:
            args += ["--checkpoint", str(path)]
        done = self.govern(url, *args)
        try:
            report: dict[str, Any] = json.loads(done.stdout)
        except json.JSONDecodeError:
            raise RuntimeError(f"govern audit verify printed no report: {done.stderr}") from None
        report["exit_code"] = done.returncode
        return report


def build(cluster: Cluster, var_dir: Path) -> World:
    """Migrate, train v1 (the demo) and v2, configure the endpoints, create a key per role."""
    url = cluster.create_database(TEMPLATE)
    settings = Settings(var_dir=var_dir, database_url=url)
    migrate.upgrade(settings)
    run_demo(settings, decisions=0)
    engine = make_engine(settings)
    factory = session_factory(engine)
    world = World(cluster=cluster, var_dir=var_dir)
    try:
        spec = json.loads((var_dir / "demo" / "credit-spec.json").read_text())
        spec = {**demo_spec(dataset=spec["dataset"], seed=11)}
        with transaction(factory) as session:
            run_id = lineage_service.create_run(session=session, spec_data=spec, actor="drill").id
        assert run_id is not None
        execute_run(settings, run_id)
        with transaction(factory) as session:
            run = lineage_service.run_public(
                session, lineage_service.get_run(session=session, run_id=run_id)
            )
            if run.model_version != 2:
                raise RuntimeError(f"training credit v2 failed: {run.error}")
            registry.change_stage(
                session=session,
                name="credit",
                version=2,
                stage=Stage.staging,
                reason="drill: canary and shadow",
                actor="drill",
            )
            for name, config in ENDPOINTS.items():
                serving_endpoints.put_endpoint(
                    session=session,
                    name=name,
                    config_in=EndpointConfigIn.model_validate(config),
                    actor="drill",
                )
            for role in Role:
                created = auth_service.create_key(
                    session=session, name=f"drill {role.value}", role=role, created_by="drill"
                )
                world.keys[role.value] = created.key
                world.key_ids[role.value] = created.key_id
    finally:
        engine.dispose()
    world.applicants = [
        applicant_features(r) for r in generate_loans(2000, seed=99).to_dict(orient="records")
    ]
    return world


def scalar(url: str, statement: sa.Executable) -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(statement).scalar_one())
    finally:
        engine.dispose()
