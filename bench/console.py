"""Console pages against the JSON API over 1,000,000 logged decisions, in the same run.

Seeds N decisions (default 1,000,000) through the real hash chain as ``bench.compliance`` does
(12 months, inputs, sex and age in the context, 250,000 subjects), signs in to the console with a
compliance key, and times, in process through the ASGI app, each page next to the API route that
returns the same data (both authenticate and write their access-trail entry):

1. decision search by subject: ``/console/decisions?subject_id=`` against
   ``/api/v1/decisions?subject_id=``, 200 subjects;
2. one decision whose explanations are stored: ``/console/decisions/{id}`` against
   ``/api/v1/decisions/{id}/dossier``, 10 decisions (each viewed once first, which computes and
   stores its explanations and counts its version's fairness tallies), 3 times each; and, on
   its own, a decision opened for the first time: the page, then its explanations;
3. the fairness page for ``sex``: ``/console/fairness`` against ``/api/v1/fairness``, 20 times,
   after a first report that counts the whole log (timed on its own).

Traffic goes on between views (2 and 3): a new decision and an outcome for an older one before
each pair, so every view brings its fairness tallies up to date.

    uv run python -m bench.console [--decisions 1000000] [--no-sqlite] [--no-postgres]
"""

from __future__ import annotations

import argparse
import random
import re
import time
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from bench.backends import add_backend_options, each_backend, print_results
from bench.compliance import SUBJECTS
from bench.drift import inputs
from bench.fairness import seed
from bench.serving import _pct
from core.auth import service as auth_service
from core.auth.models import Role
from core.config import Settings
from core.db import make_engine, session_factory, transaction
from governance.app import create_app


def _sign_in(client: TestClient, key: str) -> None:
    form = client.get("/console/sign-in")
    token = re.search(r'name="form_token" value="([^"]*)"', form.text)
    assert token, "no sign-in form"
    signed = client.post(
        "/console/sign-in",
        data={"api_key": key, "form_token": token.group(1)},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text


def _timed(client: TestClient, path: str, **kwargs: Any) -> float:
    started = time.perf_counter()
    response = client.get(path, **kwargs)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text[:500]
    return elapsed


APPLICANT = {
    "income": 38000,
    "debt_to_income": 0.42,
    "credit_history_months": 30,
    "late_payments": 3,
    "employment_years": 1.5,
    "loan_amount": 18000,
    "purpose": "personal",
    "housing": "rent",
}


def _decide(client: TestClient, admin: str, income: int) -> str:
    made = client.post(
        "/api/v1/endpoints/credit/predict",
        json={"features": {**APPLICANT, "income": income}},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert made.status_code == 200, made.text
    return str(made.json()["decision_id"])


class _Traffic:
    """One new decision and one outcome for an earlier decision per step."""

    def __init__(self, client: TestClient, admin: str, ids: list[str]) -> None:
        self.client, self.admin, self.ids, self.steps = client, admin, list(ids), 0

    def step(self) -> None:
        self.steps += 1
        self.ids.append(_decide(self.client, self.admin, 30000 + 500 * self.steps))
        recorded = self.client.post(
            f"/api/v1/decisions/{self.ids[self.steps % len(self.ids)]}/outcome",
            json={"outcome": self.steps % 2, "observed_at": datetime.now(UTC).isoformat()},
            headers={"Authorization": f"Bearer {self.admin}"},
        )
        assert recorded.status_code == 201, recorded.text


def _pair(page: list[float], api: list[float]) -> dict[str, float]:
    p, a = _pct(page, 95), _pct(api, 95)
    return {"page_p95_ms": round(p, 1), "api_p95_ms": round(a, 1), "page_over_api": round(p / a, 2)}


def measure(settings: Settings, n: int) -> dict[str, Any]:
    seeded = seed(settings, n, features=inputs(1.0), subjects=SUBJECTS)
    engine = make_engine(settings)
    with transaction(session_factory(engine)) as session:
        key = auth_service.create_key(
            session=session, name="bench", role=Role.compliance, created_by="bench"
        ).key
        admin = auth_service.create_key(
            session=session, name="bench", role=Role.admin, created_by="bench"
        ).key
    engine.dispose()
    rng = random.Random(7)  # noqa: S311 - sampling, not security
    subjects = [f"subject-{rng.randrange(SUBJECTS)}" for _ in range(200)]
    api = {"Authorization": f"Bearer {key}"}
    result: dict[str, Any] = {"decisions": n, "seed_s": round(seeded, 1)}
    with TestClient(create_app(settings)) as client:
        _sign_in(client, key)
        search_page = [
            _timed(client, "/console/decisions", params={"subject_id": s}) for s in subjects
        ]
        search_api = [
            _timed(client, "/api/v1/decisions", params={"subject_id": s}, headers=api)
            for s in subjects
        ]
        result["search_by_subject"] = _pair(search_page, search_api)

        # Ten real decisions (the seeded ones name no real artifact), each viewed once first,
        # which computes and stores its explanations and counts the fairness tallies of its
        # version from the start.
        ids = [_decide(client, admin, 20000 + 4000 * i) for i in range(10)]
        # A decision opened for the first time: the page comes without its explanations (and
        # says they are being computed), then the page's request computes them.
        fresh = _decide(client, admin, 61000)
        result["first_view"] = {
            "page_ms": round(1000 * _timed(client, f"/console/decisions/{fresh}"), 1),
            "explanations_ms": round(
                1000 * _timed(client, f"/console/decisions/{fresh}/explanations"), 1
            ),
        }
        started = time.perf_counter()
        for decision_id in ids:
            _timed(client, f"/api/v1/decisions/{decision_id}/dossier", headers=api)
        result["first_views_s"] = round(time.perf_counter() - started, 1)

        # Traffic goes on between views: before each pair, a new decision and an outcome for an
        # old one, so each view brings its tallies up to date (a new record, a changed outcome).
        live = _Traffic(client, admin, ids)
        one_page, one_api = [], []
        for _ in range(3):
            for decision_id in ids:
                live.step()
                one_page.append(_timed(client, f"/console/decisions/{decision_id}"))
                one_api.append(
                    _timed(client, f"/api/v1/decisions/{decision_id}/dossier", headers=api)
                )
        result["one_decision_stored_explanations"] = _pair(one_page, one_api)

        fairness = {"endpoint": "credit", "attributes": "sex", "window": ""}
        api_fairness = {"endpoint": "credit", "attribute": "sex"}
        # The first report of its kind counts the whole log; later ones count what is new.
        result["fairness_first_report_s"] = round(
            _timed(client, "/api/v1/fairness", params=api_fairness, headers=api), 2
        )
        fair_page, fair_api = [], []
        for _ in range(20):
            live.step()
            fair_page.append(_timed(client, "/console/fairness", params=fairness))
            fair_api.append(_timed(client, "/api/v1/fairness", params=api_fairness, headers=api))
        result["fairness_sex"] = _pair(fair_page, fair_api)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=1_000_000)
    add_backend_options(parser)
    args = parser.parse_args()
    print_results(each_backend(args, lambda settings: measure(settings, args.decisions)))


if __name__ == "__main__":
    main()
