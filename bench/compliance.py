"""Compliance queries over 1,000,000 logged decisions, on SQLite and PostgreSQL.

Seeds N decisions (default 1,000,000) through the real hash chain, over 12 months, with inputs,
context and 250,000 distinct subjects; runs ANALYZE; then, in process through the ASGI app with a
compliance key (so every request authenticates and appends its access-trail entry):

1. ``GET /decisions/{id}`` for 300 random ids: p95;
2. ``GET /decisions?subject_id=...`` for 300 random subjects: p95;
3. ``GET /decisions?since=&until=&limit=100`` over one month (a random month, then its next
   page): p95 over 200 pages;
4. ``GET /decisions?format=csv`` over everything: rows/s.

The baseline beside each is the same query in bare SQL through SQLAlchemy Core (no HTTP, no
auth, no trail), timed in the same run.

    uv run python -m bench.compliance [--decisions 1000000] [--no-sqlite] [--no-postgres]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from bench.backends import add_backend_options, each_backend, print_results
from bench.drift import inputs
from bench.fairness import START, seed
from bench.serving import _pct
from core.auth import service as auth_service
from core.auth.models import Role
from core.config import Settings
from core.db import make_engine, session_factory, transaction
from governance.app import create_app
from governance.compliance.decisions import DECISIONS

SUBJECTS = 250_000


def _p95(values: list[float]) -> float:
    return _pct(values, 95)


def measure(settings: Settings, n: int) -> dict[str, Any]:
    seeded = seed(settings, n, features=inputs(1.0), subjects=SUBJECTS)
    engine = make_engine(settings)
    with transaction(session_factory(engine)) as session:
        key = auth_service.create_key(
            session=session, name="bench", role=Role.compliance, created_by="bench"
        ).key
    rng = random.Random(5)  # noqa: S311 - sampling, not security
    with engine.connect() as conn:
        ids = [
            r[0]
            for r in conn.execute(
                sa.select(DECISIONS.c.decision_id).where(
                    DECISIONS.c.seq.in_(rng.sample(range(1, n + 1), 300))
                )
            )
        ]
    subjects = [f"subject-{rng.randrange(SUBJECTS)}" for _ in range(300)]
    months = [rng.randrange(12) for _ in range(100)]
    headers = {"Authorization": f"Bearer {key}"}
    result: dict[str, Any] = {"decisions": n, "seed_s": seeded}
    with TestClient(create_app(settings)) as client, engine.connect() as conn:
        client.get(f"/api/v1/decisions/{ids[0]}", headers=headers)  # warm up

        def timed(call: Any) -> float:
            started = time.perf_counter()
            call()
            return time.perf_counter() - started

        by_id = [
            timed(lambda i=i: client.get(f"/api/v1/decisions/{i}", headers=headers)) for i in ids
        ]
        by_id_sql = [
            timed(
                lambda i=i: conn.execute(
                    sa.select(DECISIONS).where(DECISIONS.c.decision_id == i)
                ).one()
            )
            for i in ids
        ]
        by_subject = [
            timed(
                lambda s=s: client.get(
                    "/api/v1/decisions", headers=headers, params={"subject_id": s}
                ).json()["count"]
            )
            for s in subjects
        ]
        by_subject_sql = [
            timed(
                lambda s=s: conn.execute(
                    sa.select(DECISIONS)
                    .where(DECISIONS.c.subject_id == s, DECISIONS.c.kind == "decision")
                    .order_by(DECISIONS.c.seq)
                    .limit(50)
                ).all()
            )
            for s in subjects
        ]
        pages, pages_sql = [], []
        for month in months:
            since = START + timedelta(days=30 * month)
            params = {
                "since": since.isoformat(),
                "until": (since + timedelta(days=30)).isoformat(),
                "limit": 100,
            }
            started = time.perf_counter()
            first = client.get("/api/v1/decisions", headers=headers, params=params).json()
            pages.append(time.perf_counter() - started)
            started = time.perf_counter()
            client.get(
                "/api/v1/decisions",
                headers=headers,
                params={**params, "cursor": first["next_cursor"]},
            )
            pages.append(time.perf_counter() - started)
            pages_sql.append(
                timed(
                    lambda since=since: conn.execute(
                        sa.select(DECISIONS)
                        .where(
                            DECISIONS.c.kind == "decision",
                            DECISIONS.c.created_at >= since,
                            DECISIONS.c.created_at < since + timedelta(days=30),
                        )
                        .order_by(DECISIONS.c.seq)
                        .limit(100)
                    ).all()
                )
            )
        started = time.perf_counter()
        rows = 0
        with client.stream(
            "GET", "/api/v1/decisions", headers=headers, params={"format": "csv"}
        ) as response:
            for data in response.iter_bytes():
                rows += data.count(b"\n")  # JSON text has no raw newlines: one per row
        export_s = time.perf_counter() - started
        rows -= 1  # the header
    engine.dispose()
    result.update(
        {
            "lookup_by_id_p95_ms": _p95(by_id),
            "lookup_by_id_bare_sql_p95_ms": _p95(by_id_sql),
            "lookup_by_subject_p95_ms": _p95(by_subject),
            "lookup_by_subject_bare_sql_p95_ms": _p95(by_subject_sql),
            "month_page_100_p95_ms": _p95(pages),
            "month_page_100_bare_sql_p95_ms": _p95(pages_sql),
            "csv_export_rows": rows,
            "csv_export_s": export_s,
            "csv_export_rows_per_s": rows / export_s,
        }
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=1_000_000)
    add_backend_options(parser)
    args = parser.parse_args()
    print_results(each_backend(args, lambda settings: measure(settings, args.decisions)))


if __name__ == "__main__":
    main()
