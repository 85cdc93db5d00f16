"""Fairness benchmark: the report computed in the database vs pandas + fairlearn.

For each backend (SQLite, PostgreSQL): seed N logged decisions (default 1,000,000) on the demo
endpoint, appended to the real hash chain, spread over 12 months, with sex and age in the
context, a label biased against one group, and outcomes for a quarter of them. Then time:

1. one full report (``GET /api/v1/fairness?attribute=sex``: groups, disparity, tests, outcomes);
2. a 12-month monthly trend (the same plus ``window=month``);
3. the baseline: load the same decisions and their outcomes into pandas (two SELECTs, the
   latest outcome per decision picked and merged in pandas), then compute the same metrics with fairlearn (MetricFrame selection rate,
   TPR, FPR by group, demographic parity and equalized odds differences), overall and per month.

Both paths count the same rows; the script checks that their selection rates agree.

    uv run python -m bench.fairness [--decisions 1000000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from bench.backends import add_backend_options, each_backend, print_results
from core import migrate
from core.audit import ledger
from core.auth.models import Role
from core.auth.schemas import Principal
from core.config import Settings
from core.db import make_engine, session_factory, transaction
from explain.fairness import service as fairness_service
from explain.fairness.query import DECISIONS, OUTCOMES
from governance.demo import run_demo
from serving.decision_log import CHAIN, columns_of

START = datetime(2025, 12, 1, tzinfo=UTC)
BENCH = Principal(key_id="bench", name="bench.fairness", role=Role.compliance)


FeatureRows = Callable[[int, int], list[dict[str, Any]]]


def seed(
    settings: Settings,
    n: int,
    chunk: int = 20_000,
    features: FeatureRows | None = None,
    subjects: int | None = None,
) -> float:
    """Append n decisions to the chain; ``features(offset, size)`` gives their inputs, and
    with ``subjects`` each decision names one of that many subjects."""
    migrate.upgrade(settings)
    run_demo(settings, decisions=0)
    engine = make_engine(settings)
    sessions = session_factory(engine)
    rng = np.random.default_rng(11)
    started = time.perf_counter()
    seconds = 365 * 24 * 3600
    for offset in range(0, n, chunk):
        size = min(chunk, n - offset)
        sex = rng.choice(["F", "M"], size=size)
        age = rng.integers(18, 81, size=size)
        p = np.where(sex == "F", 0.55, 0.72)
        label = (rng.random(size) < p).astype(int)
        repaid = np.where(label == 1, rng.random(size) < 0.85, rng.random(size) < 0.4)
        at = [START + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, seconds, size))]
        inputs = features(offset, size) if features else [{}] * size
        contents = []
        outcomes = []
        for i in range(size):
            decision_id = str(uuid.uuid4())
            contents.append(
                {
                    "decision_id": decision_id,
                    "kind": "decision",
                    "created_at": at[i].isoformat(),
                    "endpoint": "credit",
                    "key_id": "bench",
                    "model": {"name": "credit", "version": 1, "sha256": "0" * 64},
                    "route": "live",
                    "subject_id": f"subject-{(offset + i) % subjects}" if subjects else None,
                    "features": inputs[i],
                    "context": {"sex": str(sex[i]), "age": int(age[i])},
                    "label": int(label[i]),
                    "score": 0.5,
                }
            )
            if i % 4 == 0:
                outcomes.append(
                    {
                        "decision_id": decision_id,
                        "outcome": str(int(repaid[i])),
                        "observed_at": at[i] + timedelta(days=30),
                        "recorded_at": at[i] + timedelta(days=31),
                        "recorded_by": "bench",
                    }
                )
        with transaction(sessions) as session:
            ledger.append(
                session, chain=CHAIN, table=DECISIONS, contents=contents, columns_of=columns_of
            )
            session.execute(OUTCOMES.insert(), outcomes)
        print(f"  seeded {offset + size:,}", flush=True)
    # What autovacuum (PostgreSQL) would do soon after a bulk load: refresh the planner's
    # statistics. SQLite's ANALYZE does the same for its planner.
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


def govern_report(settings: Settings, window: str | None) -> tuple[float, dict[str, Any]]:
    engine = make_engine(settings)
    try:
        started = time.perf_counter()
        with transaction(session_factory(engine)) as session:
            report = fairness_service.report(
                session,
                BENCH,
                endpoint="credit",
                attributes=["sex"],
                bins=[],
                since=None,
                until=None,
                model=None,
                version=None,
                route=None,
                window=window,
                min_group_size=30,
            )
        return time.perf_counter() - started, report
    finally:
        engine.dispose()


def pandas_fairlearn(settings: Settings) -> tuple[float, dict[str, Any]]:
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    engine = make_engine(settings)
    started = time.perf_counter()
    decisions = sa.select(
        DECISIONS.c.decision_id, DECISIONS.c.label, DECISIONS.c.context, DECISIONS.c.created_at
    ).where(DECISIONS.c.kind == "decision", DECISIONS.c.endpoint == "credit")
    outcomes = sa.select(OUTCOMES.c.id, OUTCOMES.c.decision_id, OUTCOMES.c.outcome)
    with engine.connect() as conn:
        frame = pd.DataFrame(
            conn.execute(decisions).all(), columns=["decision_id", "label", "context", "at"]
        )
        observed = pd.DataFrame(
            conn.execute(outcomes).all(), columns=["id", "decision_id", "outcome"]
        )
    latest = observed.sort_values("id").drop_duplicates("decision_id", keep="last")
    frame = frame.merge(latest[["decision_id", "outcome"]], on="decision_id", how="left")
    loaded = time.perf_counter() - started
    frame["sex"] = [c.get("sex") for c in frame["context"]]
    y_pred = (frame["label"] == "1").to_numpy().astype(int)
    frame["month"] = pd.to_datetime(frame["at"], utc=True).dt.strftime("%Y-%m")
    selection = MetricFrame(
        metrics=selection_rate, y_true=y_pred, y_pred=y_pred, sensitive_features=frame["sex"]
    )
    known = frame["outcome"].notna().to_numpy()
    y_true = (frame.loc[known, "outcome"] == "1").to_numpy().astype(int)
    errors = MetricFrame(
        metrics={"tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=y_true,
        y_pred=y_pred[known],
        sensitive_features=frame.loc[known, "sex"],
    )
    dpd = demographic_parity_difference(y_pred, y_pred, sensitive_features=frame["sex"])
    eod = equalized_odds_difference(
        y_true, y_pred[known], sensitive_features=frame.loc[known, "sex"]
    )
    monthly = MetricFrame(
        metrics=selection_rate,
        y_true=y_pred,
        y_pred=y_pred,
        sensitive_features=frame["sex"],
        control_features=frame["month"],
    )
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, {
        "load_s": loaded,
        "selection_rate": selection.by_group.to_dict(),
        "tpr_fpr": errors.by_group.to_dict(),
        "demographic_parity_difference": dpd,
        "equalized_odds_difference": eod,
        "months": len(monthly.by_group.index.get_level_values(0).unique()),
    }


def measure(settings: Settings, n: int) -> dict[str, Any]:
    seeded = seed(settings, n)
    govern_report(settings, None)  # warm caches the same way for both paths below
    report_s, report = govern_report(settings, None)
    trend_s, trend = govern_report(settings, "month")
    baseline_s, baseline = pandas_fairlearn(settings)
    ours = {g["group"]["sex"]: g["selection_rate"] for g in report["groups"]}
    agree = all(abs(ours[k] - v) < 1e-9 for k, v in baseline["selection_rate"].items())
    return {
        "decisions": report["n"],
        "seed_s": seeded,
        "report_s": report_s,
        "trend_12_months_s": trend_s,
        "trend_periods": len(trend.get("trend", [])),
        "pandas_fairlearn_s": baseline_s,
        "pandas_load_s": baseline["load_s"],
        "report_speedup": baseline_s / report_s,
        "trend_speedup": baseline_s / trend_s,
        "selection_rates_agree": agree,
        "demographic_parity_difference": report["demographic_parity_difference"],
        "fairlearn_demographic_parity_difference": baseline["demographic_parity_difference"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=1_000_000)
    add_backend_options(parser)
    args = parser.parse_args()
    print_results(each_backend(args, lambda settings: measure(settings, args.decisions)))


if __name__ == "__main__":
    main()
