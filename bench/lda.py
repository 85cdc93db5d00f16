"""LDA search benchmark: 50 candidates on a 20,000-row loan book, in process and on a local Ray
cluster of 2 workers, in the same run.

Each path: a new PostgreSQL database (Ray's workers reach it at the same URL), the synthetic
loan book with a bias against one group (``lineage.synthetic.generate_loans(20000, bias=0.6)``)
committed to a DVC repo, a base version trained from the demo's spec, then one search of
5 ``max_iter`` values x 2 learning rates x 5 feature subsets (none dropped, or one of four
features) = 50 candidates, each trained through the real runner with its lineage and registered.
The time is from the search's start to its report. In process the executor runs
``GOV_JOB_WORKERS`` candidates at a time (1, the default); Ray runs one task per worker CPU.

    uv run python -m bench.lda [--rows 20000] [--no-ray] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench.backends import add_backend_options, print_results, train
from bench.serving import pg_database
from core import migrate
from core.auth.models import Role
from core.auth.schemas import Principal
from core.config import Settings
from core.db import make_engine, session_factory, transaction
from governance.lda import service
from lineage.dvc_repo import commit_data, init_data_repo
from lineage.executor import Executor, InProcessExecutor, RayExecutor
from lineage.synthetic import demo_spec, generate_loans

SCIENTIST = Principal(key_id="bench-lda", name="bench.lda", role=Role.data_scientist)
SPACE = {
    "params": {"max_iter": [20, 40, 60, 80, 100], "learning_rate": [0.05, 0.1]},
    "drop_features": [
        ["credit_history_months"],
        ["income"],
        ["employment_years"],
        ["housing"],
    ],
}


def _base(settings: Settings, rows: int) -> int:
    repo = settings.var_dir / "book"
    init_data_repo(repo, settings.var_dir / "remote")
    book = generate_loans(rows, seed=4, bias=0.6)
    commit_data(repo, "data/loans.csv", book.to_csv(index=False).encode(), "loan book")
    spec = demo_spec(
        model="book",
        dataset={"name": "book", "repo": str(repo), "path": "data/loans.csv", "rev": "main"},
    )
    return train(settings, spec)


def measure(settings: Settings, executor: Executor, rows: int) -> dict[str, Any]:
    migrate.upgrade(settings)
    version = _base(settings, rows)
    engine = make_engine(settings)
    sessions = session_factory(engine)
    body = {
        "base": {"model": "book", "version": version},
        "space": SPACE,
        "attribute": "sex",
        "accuracy_metric": "roc_auc",
        "max_accuracy_loss": 0.01,
        "max_candidates": 50,
        "min_group_size": 30,
        "candidate_model": "book-lda",
    }
    with transaction(sessions) as session:
        search_id = service.create(
            session, SCIENTIST, body, executor.name, datetime.now(UTC)
        ).search_id
    started = time.perf_counter()
    service.run(sessions, settings, executor, search_id)
    elapsed = time.perf_counter() - started
    with transaction(sessions) as session:
        search = service.get(session, search_id)
        report = dict(search.report or {})
        trained = [c for c in search.candidates if c.get("status") == "trained"]
        status = search.status
    engine.dispose()
    best = min(trained, key=lambda c: -c["fairness"]) if trained else None
    return {
        "executor": executor.name,
        "status": status,
        "candidates": report.get("candidates"),
        "trained": report.get("trained"),
        "seconds": round(elapsed, 1),
        "per_candidate_s": round(elapsed / max(1, len(trained)), 2),
        "pareto": report.get("pareto"),
        "less_discriminatory": report.get("less_discriminatory"),
        "fairest": None
        if best is None
        else {k: best[k] for k in ("index", "params", "dropped", "accuracy", "fairness")},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--no-ray", action="store_true")
    add_backend_options(parser)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with TemporaryDirectory() as tmp:
        url, drop = pg_database(args.pg_url)
        try:
            settings = Settings(
                var_dir=Path(tmp) / "in-process", database_url=url, environment="test"
            )
            print("in process ...", flush=True)
            results["in_process"] = measure(
                settings, InProcessExecutor(settings.job_workers), args.rows
            )
        finally:
            drop()
        if not args.no_ray:
            import ray

            url, drop = pg_database(args.pg_url)
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            try:
                settings = Settings(
                    var_dir=Path(tmp) / f"ray-{uuid.uuid4().hex[:6]}",
                    database_url=url,
                    environment="test",
                )
                print("Ray, 2 workers ...", flush=True)
                results["ray_2_workers"] = measure(settings, RayExecutor("auto"), args.rows)
            finally:
                ray.shutdown()
                drop()
            results["ray_speedup"] = round(
                results["in_process"]["seconds"] / results["ray_2_workers"]["seconds"], 2
            )
    print_results(results)


if __name__ == "__main__":
    main()
