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
