"""Adverse-action notices: making one (HTML and PDF) next to the reasons call alone, same run.

The demo (model, endpoint, 300 decisions), then N denied applicants decided through the API (in
process, no network). For each denied decision, in order:

1. ``GET /reasons``, the first time (computes SHAP and stores it): the reasons call alone;
2. ``GET /reasons`` again (SHAP from storage);
3. ``POST /notice``: the stability check (tree SHAP is exact: checked once), the HTML, the PDF,
   storing it and its chain record. The service times its parts (``compute_ms``): the HTML
   notice is the call without its PDF part.

    uv run python -m bench.notices [--decisions 200]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from bench.backends import print_results
from bench.serving import _pct
from core import migrate
from core.auth import service as auth_service
from core.auth.models import Role
from core.config import Settings
from core.db import make_engine, session_factory, transaction
from governance.app import create_app
from governance.demo import run_demo

APPLICANT = {
    "income": 18000,
    "debt_to_income": 0.45,
    "credit_history_months": 30,
    "late_payments": 3,
    "employment_years": 1.0,
    "loan_amount": 18000,
    "purpose": "personal",
    "housing": "rent",
}


def _summary(values: list[float]) -> dict[str, float]:
    """Seconds in, milliseconds out."""
    return {"p50_ms": round(_pct(values, 50), 2), "p99_ms": round(_pct(values, 99), 2)}


def _keys(settings: Settings) -> tuple[str, str]:
    engine = make_engine(settings)
    with transaction(session_factory(engine)) as session:
        admin = auth_service.create_key(
            session=session, name="bench", role=Role.admin, created_by="bench"
        ).key
        appeals = auth_service.create_key(
            session=session, name="bench", role=Role.appeals, created_by="bench"
        ).key
    engine.dispose()
    return admin, appeals


def measure(base: Path, n: int) -> dict[str, Any]:
    # One key makes every notice here: the per-key rate of new explanations is not what is measured.
    settings = Settings(
        var_dir=base, environment="test", probe_scan_interval_s=0, explain_rate_per_minute=100_000
    )
    migrate.upgrade(settings)
    run_demo(settings, decisions=300)
    admin, appeals = _keys(settings)
    rng = random.Random(11)  # noqa: S311 - applicants, not secrets
    headers = {"Authorization": f"Bearer {appeals}"}
    timings: dict[str, list[float]] = {
        k: []
        for k in (
            "reasons",
            "stored",
            "notice",
            "html_part",
            "pdf_part",
            "checks_part",
            "html_notice",
        )
    }
    held = 0
    with TestClient(create_app(settings)) as client:
        denied: list[str] = []
        while len(denied) < n:
            features = {
                **APPLICANT,
                "income": rng.randrange(9000, 30000),
                "debt_to_income": round(rng.uniform(0.35, 0.6), 2),
                "late_payments": rng.randrange(1, 6),
            }
            made = client.post(
                "/api/v1/endpoints/credit/predict",
                json={"features": features},
                headers={"Authorization": f"Bearer {admin}"},
            ).json()
            if str(made["label"]) == "0":
                denied.append(made["decision_id"])
        for decision_id in denied:
            for name in ("reasons", "stored"):
                started = time.perf_counter()
                answer = client.get(f"/api/v1/decisions/{decision_id}/reasons", headers=headers)
                timings[name].append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
            started = time.perf_counter()
            notice = client.post(f"/api/v1/decisions/{decision_id}/notice", headers=headers)
            total = time.perf_counter() - started
            assert notice.status_code == 201, notice.text
            body = notice.json()
            held += body["status"] == "held"
            parts = {k: v / 1000 for k, v in body["compute_ms"].items()}  # in seconds, as total
            timings["notice"].append(total)
            timings["html_part"].append(parts["html"])
            timings["pdf_part"].append(parts["pdf"])
            timings["checks_part"].append(parts["reasons_and_stability"])
            timings["html_notice"].append(total - parts["pdf"])
    result: dict[str, Any] = {"denied_decisions": n, "held": held}
    result.update({name: _summary(values) for name, values in timings.items()})
    reasons_p50 = result["reasons"]["p50_ms"]
    result["html_notice_over_reasons_p50"] = round(result["html_notice"]["p50_ms"] / reasons_p50, 2)
    result["html_notice_over_stored_reasons_p50"] = round(
        result["html_notice"]["p50_ms"] / result["stored"]["p50_ms"], 2
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print_results({"sqlite": measure(Path(tmp), args.decisions)})


if __name__ == "__main__":
    main()
