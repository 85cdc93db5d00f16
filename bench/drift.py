"""Drift benchmark: the report over 1,000,000 logged decisions vs pandas + scipy.

For each backend (SQLite, PostgreSQL): seed N decisions (default 1,000,000) on the demo endpoint
through the real hash chain, with inputs drawn from the demo's loan-book generator, ``income``
multiplied by ``--shift`` (1.25: a 25% rise in applicants' incomes) and the rest unchanged.
Then time:

1. govern: ``GET /api/v1/drift?endpoint=credit`` (the service call behind it, warm model):
   one pass of counts in the database, per-feature binned KS or chi-squared, Holm, PSI;
2. the baseline: load the same decisions' inputs into pandas and run ``scipy.stats.ks_2samp``
   (numeric) and ``chi2_contingency`` (categorical) against the same training rows.

Both must flag the same features: income only.

    uv run python -m bench.drift [--decisions 1000000] [--no-postgres] [--no-sqlite]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy import stats

from bench.backends import add_backend_options, each_backend, print_results
from bench.fairness import BENCH, seed
from core.config import Settings
from core.db import make_engine, transaction
from explain.drift import service as drift_service
from explain.fairness.query import DECISIONS
from governance.app import create_app
from lineage.input_schema import InputSchema
from lineage.synthetic import applicant_features, generate_loans


def inputs(shift: float) -> Any:
    def rows(offset: int, size: int) -> list[dict[str, Any]]:
        frame = generate_loans(size, seed=100_000 + offset)
        frame["income"] = frame["income"] * shift
        return [applicant_features(r) for r in frame.to_dict("records")]

    return rows


def govern_drift(settings: Settings) -> tuple[float, dict[str, Any], pd.DataFrame, Any]:
    app = create_app(settings)
    try:
        explainers, sessions = app.state.explainers, app.state.sessions

        def once() -> dict[str, Any]:
            with transaction(sessions) as session:
                return drift_service.report(
                    session,
                    BENCH,
                    explainers,
                    endpoint="credit",
                    since=None,
                    until=None,
                    model=None,
                    version=None,
                    alpha=0.01,
                    psi_threshold=0.1,
                )

        once()  # load the model and its training rows: not counted
        started = time.perf_counter()
        report = once()
        elapsed = time.perf_counter() - started
        [version] = report["versions"]
        context = explainers.contexts.get(
            "credit",
            version["version"],
            app.state.serving.model("credit", version["version"]).sha256,
        )
        return elapsed, report, context.train, context.input_schema
    finally:
        app.state.engine.dispose()


def pandas_scipy(settings: Settings, train: pd.DataFrame, schema: InputSchema) -> Any:
    engine = make_engine(settings)
    started = time.perf_counter()
    query = sa.select(DECISIONS.c.features).where(
        DECISIONS.c.kind == "decision", DECISIONS.c.endpoint == "credit"
    )
    with engine.connect() as conn:
        live = pd.DataFrame([row[0] for row in conn.execute(query)])
    loaded = time.perf_counter() - started
    p_values = {}
    for feature in schema.features:
        name = feature.name
        if feature.numeric:
            p_values[name] = float(stats.ks_2samp(train[name].astype(float), live[name]).pvalue)
        else:
            categories = sorted(set(train[name].astype(str)) | set(live[name].astype(str)))
            table = np.array(
                [
                    [int((train[name].astype(str) == c).sum()) for c in categories],
                    [int((live[name].astype(str) == c).sum()) for c in categories],
                ]
            )
            p_values[name] = float(stats.chi2_contingency(table).pvalue)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, loaded, len(live), p_values


def measure(settings: Settings, n: int, shift: float) -> dict[str, Any]:
    seeded = seed(settings, n, features=inputs(shift))
    report_s, report, train, schema = govern_drift(settings)
    [version] = report["versions"]
    baseline_s, load_s, rows, p_values = pandas_scipy(settings, train, schema)
    ours = version["drifted_features"]
    theirs = sorted(name for name, p in p_values.items() if p < 0.01 / len(p_values))
    return {
        "decisions": report["n"],
        "seed_s": seeded,
        "govern_drift_s": report_s,
        "pandas_scipy_s": baseline_s,
        "pandas_load_s": load_s,
        "speedup": baseline_s / report_s,
        "drifted_govern": ours,
        "drifted_scipy_bonferroni": theirs,
        "baseline_rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--shift", type=float, default=1.25)
    add_backend_options(parser)
    args = parser.parse_args()
    results = {
        "shift_income": args.shift,
        **each_backend(args, lambda settings: measure(settings, args.decisions, args.shift)),
    }
    print_results(results)


if __name__ == "__main__":
    main()
