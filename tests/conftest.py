"""Fixtures shared by every test.

Every test that touches the database runs once on SQLite and once on PostgreSQL (when
GOV_TEST_DATABASE_URL is set). Databases are built by the real migrations, once per backend, and
every table is emptied after each test.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core import migrate
from core.auth import service as auth_service
from core.auth.models import Role
from core.config import Settings, get_settings
from core.db import make_engine, session_factory, transaction
from governance.app import create_app
from governance.tables import metadata
from tests.support.databases import PG_ADMIN_URL, empty_all_tables, fresh_database
from tests.support.factories import (
    DataRepo,
    cached_model,
    cached_spec,
    loan_book_yaml,
    make_data_repo,
    make_loan_book_repo,
    serve_live,
)
from tests.support.fit_cache import FIT_CACHE

BACKENDS = ["sqlite", "postgresql"]

# The fixture models' store on disk, which the suite's processes (pytest-xdist) share.
FIT_DIR = "GOV_TEST_FIT_DIR"
_OWNED_FIT_DIR = pytest.StashKey[Path]()
_FITS = pytest.StashKey[Counter[str]]()


def pytest_configure(config: pytest.Config) -> None:
    # The controller (or a run in one process) makes the store; workers inherit its variable.
    if not hasattr(config, "workerinput") and FIT_DIR not in os.environ:
        config.stash[_OWNED_FIT_DIR] = Path(tempfile.mkdtemp(prefix="govern-fits-"))
        os.environ[FIT_DIR] = str(config.stash[_OWNED_FIT_DIR])
    config.stash[_FITS] = Counter()
    FIT_CACHE.share(Path(os.environ[FIT_DIR]))


def pytest_unconfigure(config: pytest.Config) -> None:
    owned = config.stash.get(_OWNED_FIT_DIR, None)
    if owned is not None:
        shutil.rmtree(owned, ignore_errors=True)
        os.environ.pop(FIT_DIR, None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: its counts go to the controller
        workeroutput["fits"] = {"fitted": FIT_CACHE.fitted, "reused": FIT_CACHE.reused}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    fits = getattr(node, "workeroutput", {}).get("fits") or {}
    node.config.stash[_FITS].update(fits)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    fits = terminalreporter.config.stash[_FITS]
    fitted, reused = FIT_CACHE.fitted + fits["fitted"], FIT_CACHE.reused + fits["reused"]
    if fitted or reused:
        terminalreporter.write_line(
            f"fixture models (tests/support/fit_cache.py): {fitted} fitted for real, "
            f"{reused} registrations reused one of them"
        )


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and not PG_ADMIN_URL:
        pytest.skip(
            "PostgreSQL not configured: set GOV_TEST_DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/test"
        )
    return str(request.param)


@pytest.fixture
def sqlite_only(backend: str) -> None:
    """For a test whose subject does not depend on the database: one backend suffices. Ask for
    it first, before the fixtures that build a database."""
    if backend != "sqlite":
        pytest.skip("what this tests does not depend on the database; one backend suffices")


@pytest.fixture
def server_database(backend: str) -> None:
    """For work spread over processes, which a deployment runs on a database server: it runs on
    PostgreSQL when one is configured, else on SQLite. Ask for it first."""
    if backend == "sqlite" and PG_ADMIN_URL:
        pytest.skip("runs on PostgreSQL, as a deployment spread over processes would")


@pytest.fixture(scope="session")
def migrated_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp(f"db-{backend}")
    with fresh_database(backend, directory) as url:
        migrate.upgrade(Settings(database_url=url, var_dir=directory, environment="test"))
        yield url


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A brand-new database with no migrations applied."""
    with fresh_database(backend, tmp_path) as url:
        yield url


@pytest.fixture
def settings(
    migrated_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    settings = Settings(
        database_url=migrated_url,
        var_dir=tmp_path / "var",
        environment="test",
        # The test DVC repos live in pytest's temporary folders, outside var_dir.
        data_roots=[tmp_path_factory.getbasetemp()],
        # Sampling explainers run in the server process, except in the tests of the pool.
        explain_workers=0,
    )
    yield settings
    engine = make_engine(settings)
    try:
        empty_all_tables(engine, metadata)
    finally:
        engine.dispose()


@pytest.fixture
def engine(settings: Settings) -> Iterator[sa.Engine]:
    engine = make_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


KeyMaker = Callable[..., str]


@pytest.fixture
def make_key(engine: sa.Engine) -> KeyMaker:
    """Create a real API key with a role and return its secret."""

    def _make(role: Role | str = Role.admin, name: str = "test", **kwargs: Any) -> str:
        with transaction(session_factory(engine)) as session:
            created = auth_service.create_key(
                session=session, name=name, role=Role(role), created_by="test", **kwargs
            )
        return created.key

    return _make


@pytest.fixture
def auth(make_key: KeyMaker) -> Callable[[Role | str], dict[str, str]]:
    """Headers for a new key of the given role."""

    def _headers(role: Role | str) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_key(role)}"}

    return _headers


@pytest.fixture
def env_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Point the environment (and so the CLI) at the test database."""
    monkeypatch.setenv("GOV_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("GOV_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("GOV_ENVIRONMENT", "test")
    monkeypatch.setenv("GOV_DATA_ROOTS", os.pathsep.join(str(p) for p in settings.data_roots))
    monkeypatch.setenv("GOV_EXPLAIN_WORKERS", str(settings.explain_workers))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def data_repo(tmp_path_factory: pytest.TempPathFactory) -> DataRepo:
    """A real git + DVC repo with a local remote and two committed versions of a loan book.

    Shared by the session: tests that damage a repo build their own with ``make_data_repo``.
    """
    return make_data_repo(tmp_path_factory.mktemp("dvc"))


@pytest.fixture(scope="session")
def loan_book_repo(tmp_path_factory: pytest.TempPathFactory) -> DataRepo:
    """A real DVC repo with a loan book shaped like a lender's export: coded and integer-coded
    categories, missing values, yes/no columns, a small protected group (``lineage.loanbook``)."""
    return make_loan_book_repo(tmp_path_factory.mktemp("book"))


@dataclass
class Served:
    """An endpoint with real trained models behind it."""

    endpoint: str
    versions: list[int]
    headers: dict[str, str]


@pytest.fixture
def served(settings: Settings, data_repo: DataRepo, client: TestClient, auth: Any) -> Served:
    """Two trained versions of `credit` (different seeds); endpoint `credit` serves v1 (in
    production) live; v2 has no stage. Their fits come from the run's cache (``fit_cache``)."""
    v1 = cached_model(settings, data_repo, seed=7)
    v2 = cached_model(settings, data_repo, seed=8)
    admin = auth(Role.admin)
    serve_live(client, admin, "credit", "credit", v1)
    return Served(endpoint="credit", versions=[v1, v2], headers=admin)


@pytest.fixture
def served_book(
    settings: Settings, loan_book_repo: DataRepo, client: TestClient, auth: Any
) -> Served:
    """The loan-book model trained from its spec text, in production behind endpoint `lending`
    (its fit from the run's cache)."""
    version = cached_spec(settings, loan_book_yaml(loan_book_repo))
    admin = auth(Role.admin)
    serve_live(client, admin, "lending", "loanbook", version)
    return Served(endpoint="lending", versions=[version], headers=admin)
