"""Test data builders, in one place: DVC repos with real data versions, specs, trained models."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from core.db import make_engine, session_factory, transaction
from lineage import service
from lineage.dvc_repo import commit_data, init_data_repo
from lineage.loanbook import generate_loan_book, loan_book_spec
from lineage.runner import execute_run
from lineage.synthetic import demo_spec, generate_loans
from tests.support.fit_cache import FIT_CACHE

DATA_PATH = "data/loans.csv"


@dataclass
class DataRepo:
    repo: Path
    remote: Path
    path: str = DATA_PATH
    commits: list[str] = field(default_factory=list)

    def add_version(
        self, content: bytes, message: str, *, path: str | None = None, push: bool = True
    ) -> str:
        commit = commit_data(self.repo, path or self.path, content, message, push=push)
        self.commits.append(commit)
        return commit


def loans_csv(n: int = 1500, seed: int = 1, bias: float = 0.0) -> bytes:
    return generate_loans(n, seed=seed, bias=bias).to_csv(index=False).encode()


def make_data_repo(base: Path, versions: int = 2, n: int = 1500) -> DataRepo:
    data = DataRepo(
        repo=init_data_repo(base / "repo", base / "remote"), remote=(base / "remote").resolve()
    )
    for i in range(versions):
        data.add_version(loans_csv(n=n, seed=i + 1), f"loans v{i + 1}")
    return data


def spec_for(
    data: DataRepo,
    *,
    rev: str | None = None,
    seed: int = 7,
    model: str = "credit",
    **overrides: Any,
) -> dict[str, Any]:
    spec = demo_spec(
        model=model,
        dataset={
            "name": "loans",
            "repo": str(data.repo),
            "path": data.path,
            "rev": rev or data.commits[-1],
        },
        seed=seed,
    )
    spec["estimator"]["params"]["max_iter"] = 40
    spec.update(overrides)
    return spec


def wait_for_run(
    client: TestClient, run_id: int, headers: dict[str, str], timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/api/v1/runs/{run_id}", headers=headers).json()
        if body["status"] in {"succeeded", "failed"} or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def train_via_api(
    client: TestClient, headers: dict[str, str], spec: dict[str, Any]
) -> dict[str, Any]:
    response = client.post("/api/v1/runs", headers=headers, json=spec)
    assert response.status_code == 202, response.text
    run = wait_for_run(client, response.json()["id"], headers)
    assert run["status"] == "succeeded", run
    return run


def train_model(
    settings: Any, data: DataRepo, *, seed: int = 7, model: str = "credit", **overrides: Any
) -> int:
    """Train through the real service and runner, in process; returns the version number."""
    return train_spec(settings, spec_for(data, seed=seed, model=model, **overrides))


def cached_model(
    settings: Any, data: DataRepo, *, seed: int = 7, model: str = "credit", **overrides: Any
) -> int:
    """``train_model`` for a test that needs a trained model, not a training: the fit is run
    once per test run and reused (``tests.support.fit_cache``); the rest is the real runner."""
    return cached_spec(settings, spec_for(data, seed=seed, model=model, **overrides))


APPLICANT = {
    "income": 52000.0,
    "debt_to_income": 0.31,
    "credit_history_months": 84,
    "late_payments": 1,
    "employment_years": 4.5,
    "loan_amount": 12000.0,
    "purpose": "car",
    "housing": "rent",
}


def applicant(**changes: Any) -> dict[str, Any]:
    return {**APPLICANT, **changes}


def promote(client: TestClient, headers: dict[str, str], model: str, version: int) -> None:
    """Put a version in production, as a live route requires."""
    response = client.post(
        f"/api/v1/models/{model}/versions/{version}/stage",
        headers=headers,
        json={"stage": "production", "reason": "tests: served live"},
    )
    assert response.status_code == 201, response.text


LOAN_BOOK_PATH = "data/book.csv"


def make_loan_book_repo(base: Path, n: int = 1000, seed: int = 0) -> DataRepo:
    """A DVC repo holding the loan book shaped like a lender's export (``lineage.loanbook``)."""
    data = DataRepo(
        repo=init_data_repo(base / "repo", base / "remote"),
        remote=(base / "remote").resolve(),
        path=LOAN_BOOK_PATH,
    )
    data.add_version(generate_loan_book(n, seed=seed).to_csv(index=False).encode(), "loan book")
    return data


def loan_book_yaml(data: DataRepo, *, model: str = "loanbook", seed: int = 3) -> str:
    dataset = {"name": "book", "repo": str(data.repo), "path": data.path, "rev": data.commits[-1]}
    return loan_book_spec(dataset, model=model, seed=seed).replace("max_iter: 120", "max_iter: 40")


def train_spec(settings: Any, spec: dict[str, Any] | str) -> int:
    """Train a spec (a mapping, or YAML text) through the real service and runner, in process;
    returns the version number."""
    engine = make_engine(settings)
    try:
        factory = session_factory(engine)
        with transaction(factory) as session:
            run_id = service.create_run(session=session, spec_data=spec, actor="test").id
        assert run_id is not None
        execute_run(settings, run_id)
        with transaction(factory) as session:
            public = service.run_public(session, service.get_run(session=session, run_id=run_id))
        assert public.model_version is not None, public.error
        return public.model_version
    finally:
        engine.dispose()


def cached_spec(settings: Any, spec: dict[str, Any] | str) -> int:
    """``train_spec`` with the fit looked up by content address, or run once and stored
    (``tests.support.fit_cache``): the run, its data checks, the artifact, the lineage and the
    version are registered by the real service and runner in this test's database."""
    with FIT_CACHE.reuse():
        return train_spec(settings, spec)


def serve_live(
    client: TestClient, headers: dict[str, str], endpoint: str, model: str, version: int
) -> None:
    """Put a version in production and make it the endpoint's one live route."""
    promote(client, headers, model, version)
    response = client.put(
        f"/api/v1/endpoints/{endpoint}",
        headers=headers,
        json={"routes": [{"model": model, "version": version}]},
    )
    assert response.status_code == 200, response.text


def book_applicant(**changes: Any) -> dict[str, Any]:
    """A loan-book applicant as a lender's system sends one: codes, integer codes, numbers."""
    return {
        "checking_status": "A11",
        "employment": 2,
        "housing": 1,
        "income": 1500.0,
        "payments_to_income": 0.45,
        "housing_to_income": 0.3,
        "loan_amount": 6000.0,
        "purpose": "car",
        "has_guarantor": "no",
        "marital_status": "A93",
        "age": 24,
        **changes,
    }


def decision_reports(
    client: TestClient, auth: Any, decision: str, endpoint: str, model: str, version: int
) -> dict[str, Any]:
    """Every explanation and report of one decision and its endpoint, as its readers ask for
    them: name -> the response."""
    from core.auth.models import Role

    compliance, scientist = auth(Role.compliance), auth(Role.data_scientist)
    on = f"/api/v1/decisions/{decision}"
    return {
        "shap": client.get(f"{on}/explanations/shap", headers=scientist),
        "anchor": client.get(f"{on}/explanations/anchor", headers=scientist),
        "counterfactual": client.get(f"{on}/explanations/counterfactual", headers=scientist),
        "robustness": client.get(f"{on}/robustness", headers=scientist),
        "reasons": client.get(f"{on}/reasons", headers=compliance),
        "dossier": client.get(f"{on}/dossier", headers=compliance),
        "fairness": client.get(
            "/api/v1/fairness",
            params={"endpoint": endpoint, "attribute": "sex"},
            headers=compliance,
        ),
        "drift": client.get("/api/v1/drift", params={"endpoint": endpoint}, headers=compliance),
        "card": client.get(f"/api/v1/models/{model}/versions/{version}/card", headers=compliance),
    }


@contextmanager
def client_with(settings: Any, **changes: object) -> Iterator[TestClient]:
    """The API of an app whose settings differ from the test's in ``changes``."""
    from governance.app import create_app

    app = create_app(settings.model_copy(update=changes))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def rebuilt(client: TestClient, headers: dict[str, str], model: str, version: int) -> Any:
    """Start a rebuild of a version through the API and wait for it to finish."""
    started = client.post(f"/api/v1/models/{model}/versions/{version}/rebuilds", headers=headers)
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 180
    while True:
        found = client.get(f"/api/v1/rebuilds/{started.json()['id']}", headers=headers).json()
        if found["status"] in {"succeeded", "failed"} or time.monotonic() > deadline:
            return found
        time.sleep(0.2)
