"""Running one measurement on the embedded SQLite database and on a throw-away PostgreSQL one."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.serving import pg_database
from core.config import Settings


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "GOV_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )


def each_backend(
    args: argparse.Namespace, measure: Callable[[Settings], dict[str, Any]]
) -> dict[str, Any]:
    """``measure`` on SQLite, then on a new PostgreSQL database (dropped afterwards)."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_sqlite:
            print("SQLite ...", flush=True)
            results["sqlite"] = measure(Settings(var_dir=Path(tmp) / "sqlite", environment="test"))
        if not args.no_postgres:
            url, drop = pg_database(args.pg_url)
            try:
                print("PostgreSQL ...", flush=True)
                results["postgresql"] = measure(
                    Settings(var_dir=Path(tmp) / "pg", database_url=url, environment="test")
                )
            finally:
                drop()
    return results


def print_results(results: dict[str, Any]) -> None:
    print(
        json.dumps(results, indent=2, default=lambda v: round(v, 4) if isinstance(v, float) else v)
    )


def train(settings: Settings, spec: dict[str, Any]) -> int:
    """Train a spec through the real service and runner, in this process; its version."""
    from core.db import make_engine, session_factory, transaction
    from lineage import service as lineage_service
    from lineage.runner import execute_run

    engine = make_engine(settings)
    factory = session_factory(engine)
    try:
        with transaction(factory) as session:
            run_id = lineage_service.create_run(session=session, spec_data=spec, actor="bench").id
        assert run_id is not None
        execute_run(settings, run_id)
        with transaction(factory) as session:
            public = lineage_service.run_public(
                session, lineage_service.get_run(session=session, run_id=run_id)
            )
    finally:
        engine.dispose()
    assert public.model_version is not None, public.error
    return public.model_version
