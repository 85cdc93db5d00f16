"""Experiment benchmark: the report computed in the database vs pandas over the same rows.

For each backend (SQLite, PostgreSQL): the demo (credit v1 live), two more versions trained from
the demo's spec with other seeds, and an experiment declared through the service: v1 the
champion, v2 a canary at 30%, v3 a shadow. Then N decisions (default 1,000,000) appended to the
real hash chain as that routing makes them (70% live, 30% on the canary) with a shadow record for
every live one, sex in the context, a latency, an out-of-distribution flag, and outcomes for a
quarter. Then time:

1. the report (``GET /api/v1/experiments/{id}``: every arm's metric, default rate among the
   approved by default (``--metric``), the tests, the sample-ratio check, the guardrails by sex,
   the p99 latency interval, the shadow's disagreement), as compliance reads it: counted from
   the start (the first report in a process), again at once, and after 1% more decisions and
   outcomes arrived and a quarter of those many earlier outcomes were corrected (the kept
   counts brought up to date, ``governance.experiments.tally``);
2. the same report counted from the start in a new process, which must equal the kept one;
3. the baseline: the same rows loaded into pandas (two SELECTs, the latest outcome merged) and
   the same counts computed there.

Both paths count the same rows; the script checks that their figures agree.

    uv run python -m bench.experiments [--decisions 1000000] [--metric default_rate]
        [--no-sqlite] [--no-postgres]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from bench.backends import add_backend_options, each_backend, print_results, train
from core import migrate
from core.audit import ledger
from core.auth.models import Role
from core.auth.schemas import Principal
from core.config import Settings
from core.db import make_engine, session_factory, transaction
from explain.fairness.query import DECISIONS, OUTCOMES
from governance.demo import run_demo
from governance.experiments import service
from governance.experiments.schemas import ExperimentIn
from serving.decision_log import CHAIN, columns_of

BENCH = Principal(key_id="bench", name="bench.experiments", role=Role.compliance)
SCIENTIST = Principal(key_id="bench-ds", name="bench.experiments", role=Role.data_scientist)


def _train(settings: Settings, seed: int) -> int:
    spec = json.loads((settings.var_dir / "demo" / "credit-spec.json").read_text())
    spec["seeds"] = {**spec.get("seeds", {}), "split": seed, "estimator": seed}
    return train(settings, spec)


def declare(settings: Settings, metric: str = "default_rate") -> tuple[str, list[int]]:
    migrate.upgrade(settings)
    run_demo(settings, decisions=0)
    versions = [1, _train(settings, 8), _train(settings, 9)]
    body = ExperimentIn.model_validate(
        {
            "name": "bench",
            "endpoint": "credit",
            "champion": {"model": "credit", "version": versions[0]},
            "challengers": [
                {"model": "credit", "version": versions[1], "mode": "canary", "weight": 0.3},
                {"model": "credit", "version": versions[2], "mode": "shadow"},
            ],
            "metric": {"kind": metric, "mde": 0.01},
            "guardrails": {"attributes": ["sex"], "max_ood_rate": 0.05, "max_p99_latency_ms": 50},
            "stopping": {"kind": "msprt", "baseline": 0.6},
        }
    )
    engine = make_engine(settings)
    with transaction(session_factory(engine)) as session:
        experiment = service.create(session, body, SCIENTIST, datetime.now(UTC))
        experiment_id = experiment.experiment_id
    engine.dispose()
    return experiment_id, versions


def seed(
    settings: Settings, versions: list[int], n: int, chunk: int = 20_000, rng_seed: int = 11
) -> float:
    engine = make_engine(settings)
    sessions = session_factory(engine)
    rng = np.random.default_rng(rng_seed)
    started = time.perf_counter()
    at = datetime.now(UTC)
    for offset in range(0, n, chunk):
        size = min(chunk, n - offset)
        sex = rng.choice(["F", "M"], size=size)
        canary = rng.random(size) < 0.3
        approve = rng.random(size) < np.where(sex == "F", 0.55, 0.65)
        shadow_approve = np.where(rng.random(size) < 0.9, approve, ~approve)
        latency = np.round(rng.exponential(4.0, size), 3)
        outlier = rng.random(size) < 0.02
        repaid = rng.random(size) < 0.85
        contents, outcomes = [], []
        for i in range(size):
            decision_id = str(uuid.uuid4())
            version = versions[1] if canary[i] else versions[0]
            record = {
                "decision_id": decision_id,
                "kind": "decision",
                "created_at": (at + timedelta(microseconds=offset + i)).isoformat(),
                "endpoint": "credit",
                "key_id": "bench",
                "model": {"name": "credit", "version": version, "sha256": "0" * 64},
                "route": "challenger-1" if canary[i] else "live",
                "subject_id": f"subject-{offset + i}",
                "features": {},
                "context": {"sex": str(sex[i])},
                "label": int(approve[i]),
                "score": 0.5,
                "outlier_score": 1.0,
                "is_outlier": bool(outlier[i]),
                "latency_ms": float(latency[i]),
            }
            contents.append(record)
            if not canary[i]:  # a shadow never answers: no latency
                contents.append(
                    {
                        **{k: v for k, v in record.items() if k != "latency_ms"},
                        "decision_id": str(uuid.uuid4()),
                        "kind": "shadow",
                        "model": {"name": "credit", "version": versions[2], "sha256": "0" * 64},
                        "route": "shadow",
                        "label": int(shadow_approve[i]),
                        "parent_decision_id": decision_id,
                    }
                )
            if i % 4 == 0:
                outcomes.append(
                    {
                        "decision_id": decision_id,
                        "outcome": str(int(repaid[i])),
                        "observed_at": at + timedelta(days=30),
                        "recorded_at": at + timedelta(days=31),
                        "recorded_by": "bench",
                    }
                )
        with transaction(sessions) as session:
            ledger.append(
                session, chain=CHAIN, table=DECISIONS, contents=contents, columns_of=columns_of
            )
            session.execute(OUTCOMES.insert(), outcomes)
        print(f"  seeded {offset + size:,}", flush=True)
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


def more(settings: Settings, versions: list[int], n: int, corrections: int) -> float:
    """``n`` more decisions (with outcomes for a quarter), and ``corrections`` outcomes recorded
    again, the other way, for decisions counted before: what a kept tally must catch up on."""
    started = time.perf_counter()
    seed(settings, versions, n, rng_seed=12)
    engine = make_engine(settings)
    with transaction(session_factory(engine)) as session:
        earlier = session.execute(
            sa.select(OUTCOMES.c.decision_id, OUTCOMES.c.outcome)
            .order_by(OUTCOMES.c.id)
            .limit(corrections)
        ).all()
        at = datetime.now(UTC)
        session.execute(
            OUTCOMES.insert(),
            [
                {
                    "decision_id": row.decision_id,
                    "outcome": "0" if row.outcome == "1" else "1",
                    "observed_at": at + timedelta(days=40),
                    "recorded_at": at + timedelta(days=41),
                    "recorded_by": "bench-correction",
                }
                for row in earlier
            ],
        )
    engine.dispose()
    return time.perf_counter() - started


def govern_report(settings: Settings, experiment_id: str) -> tuple[float, dict[str, Any]]:
    engine = make_engine(settings)
    try:
        started = time.perf_counter()
        with transaction(session_factory(engine)) as session:
            report = service.report(session, settings, experiment_id, BENCH, datetime.now(UTC))
        return time.perf_counter() - started, report
    finally:
        engine.dispose()


def pandas_counts(settings: Settings, started_seq: int) -> tuple[float, dict[str, Any]]:
    """The same arms' approval rates, by sex, p99 latency and shadow disagreement, in pandas."""
    engine = make_engine(settings)
    started = time.perf_counter()
    columns = [
        DECISIONS.c.decision_id,
        DECISIONS.c.kind,
        DECISIONS.c.route,
        DECISIONS.c.label,
        DECISIONS.c.context,
        DECISIONS.c.is_outlier,
        DECISIONS.c.latency_ms,
        DECISIONS.c.parent_decision_id,
    ]
    rows = sa.select(*columns).where(
        DECISIONS.c.endpoint == "credit", DECISIONS.c.seq > started_seq
    )
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(rows).all(), columns=[c.name for c in columns])
        observed = pd.DataFrame(
            conn.execute(
                sa.select(OUTCOMES.c.id, OUTCOMES.c.decision_id, OUTCOMES.c.outcome)
            ).all(),
            columns=["id", "decision_id", "outcome"],
        )
    latest = observed.sort_values("id").drop_duplicates("decision_id", keep="last")
    frame = frame.merge(latest[["decision_id", "outcome"]], on="decision_id", how="left")
    frame["sex"] = [c.get("sex") for c in frame["context"]]
    frame["approved"] = frame["label"] == "1"
    live = frame[(frame["kind"] == "decision") & (frame["route"] == "live")]
    canary = frame[(frame["kind"] == "decision") & (frame["route"] == "challenger-1")]
    shadow = frame[frame["kind"] == "shadow"].merge(
        live[["decision_id", "approved", "outcome"]],
        left_on="parent_decision_id",
        right_on="decision_id",
        suffixes=("", "_champion"),
    )
    shadow["outcome"] = shadow["outcome_champion"]  # what happened to the same applicant

    def default_rate(rows: pd.DataFrame) -> float:
        known = rows[rows["approved"] & rows["outcome"].notna()]
        return float((known["outcome"] != "1").mean())

    result = {
        "approval_rate": {
            "champion": live["approved"].mean(),
            "challenger-1": canary["approved"].mean(),
            "challenger-2": shadow["approved"].mean(),
        },
        "default_rate": {
            "champion": default_rate(live),
            "challenger-1": default_rate(canary),
            "challenger-2": default_rate(shadow),
        },
        "by_sex": live.groupby("sex")["approved"].mean().to_dict(),
        "p99": {
            "champion": float(np.quantile(live["latency_ms"], 0.99, method="inverted_cdf")),
            "challenger-1": float(np.quantile(canary["latency_ms"], 0.99, method="inverted_cdf")),
        },
        "disagreements": int((shadow["approved"] != shadow["approved_champion"]).sum()),
        "ood": {"champion": live["is_outlier"].mean()},
        "decisions": len(live) + len(canary),
    }
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, result


def _agree(report: dict[str, Any], baseline: dict[str, Any], metric: str) -> bool:
    arms = {a["arm"]: a for a in report["arms"]}
    return (
        all(
            abs(arms[arm]["metric"]["value"] - value) < 1e-9
            for arm, value in baseline[metric].items()
        )
        and all(
            arms[arm]["guardrails"]["p99_latency_ms"]["value"] == value
            for arm, value in baseline["p99"].items()
        )
        and report["shadows"][0]["disagreements"] == baseline["disagreements"]
    )


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "compute_ms"}


def measure(settings: Settings, n: int, metric: str) -> dict[str, Any]:
    experiment_id, versions = declare(settings, metric)
    seeded = seed(settings, versions, n)
    # The first report in a process counts everything; later ones bring the kept counts up.
    first_s, _ = govern_report(settings, experiment_id)
    engine = make_engine(settings)  # one engine, as the service has: its tallies are kept
    try:

        def timed() -> tuple[float, dict[str, Any]]:
            started = time.perf_counter()
            with transaction(session_factory(engine)) as session:
                found = service.report(session, settings, experiment_id, BENCH, datetime.now(UTC))
            return time.perf_counter() - started, found

        cold_s, _ = timed()
        again_s, _ = timed()
        appended = n // 100
        more_s = more(settings, versions, appended, corrections=appended // 4)
        kept_s, kept = timed()
    finally:
        engine.dispose()
    recount_s, recounted = govern_report(settings, experiment_id)  # a new engine: from the start
    reader = make_engine(settings)
    with reader.connect() as conn:
        started_seq = int(
            conn.execute(
                sa.text("SELECT started_seq FROM experiment WHERE experiment_id = :e"),
                {"e": experiment_id},
            ).scalar_one()
        )
    reader.dispose()
    baseline_s, baseline = pandas_counts(settings, started_seq)
    arms = {a["arm"]: a for a in kept["arms"]}
    return {
        "metric": metric,
        "decisions": sum(arms[a]["decisions"] for a in ("champion", "challenger-1")),
        "shadow_records": arms["challenger-2"]["decisions"],
        "seed_s": seeded,
        "report_first_s": first_s,
        "report_from_start_s": cold_s,
        "report_again_s": again_s,
        "appended": appended,
        "appended_s": more_s,
        "report_kept_s": kept_s,
        "report_recounted_s": recount_s,
        "kept_equals_recounted": _figures(kept) == _figures(recounted),
        "pandas_s": baseline_s,
        "speedup_kept": baseline_s / kept_s,
        "speedup_from_start": baseline_s / cold_s,
        "figures_agree": _agree(kept, baseline, metric),
        "decision": kept["decision"],
        "sample_ratio_p": kept["sample_ratio"]["p_value"],
        "breached": [f"{b['arm']}:{b['guardrail']}" for b in kept["guardrails_breached"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument(
        "--metric", choices=["approval_rate", "default_rate"], default="default_rate"
    )
    add_backend_options(parser)
    args = parser.parse_args()
    print_results(
        each_backend(args, lambda settings: measure(settings, args.decisions, args.metric))
    )


if __name__ == "__main__":
    main()
