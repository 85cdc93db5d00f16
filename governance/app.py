"""The app factory. ``create_app(settings)`` builds a complete, independent service instance."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from core import health
from core.auth.cache import KeyCache
from core.auth.gate import AuthGate
from core.auth.router import router as keys_router
from core.config import Settings, get_settings
from core.db import make_engine, session_factory, utcnow
from core.deps import authenticate_token
from core.errors import document_errors, is_connection_error, register_error_handlers
from core.heap import settle_after
from core.limits import KeyLimiter
from core.middleware import BodySizeLimit, RefuseNul
from core.migrate import ensure_at_head
from explain.fairness.router import router as fairness_router
from explain.router import router as explain_router
from explain.service import Explainers, preload_libraries
from governance import __version__
from governance.audit.alerts import Scanner
from governance.audit.router import router as audit_router
from governance.casework.router import router as casework_router
from governance.compliance.router import router as compliance_router
from governance.console.auth import ConsoleSessions, error_page
from governance.console.casework import router as console_casework
from governance.console.experiments import router as console_experiments
from governance.console.promotions import router as console_promotions
from governance.console.render import HERE as CONSOLE_DIR
from governance.console.render import PREFIX, STATIC
from governance.console.router import router as console_router
from governance.experiments.router import router as experiments_router
from governance.lda.router import router as lda_router
from governance.promotion.router import router as promotion_router
from lineage.executor import make_executor
from lineage.router import router as lineage_router
from lineage.runner import fail_interrupted_runs
from rebuild.router import router as rebuild_router
from rebuild.service import fail_interrupted_rebuilds
from serving import router as serving_router
from serving.admission import KeyAdmission, PredictAdmission
from serving.state import Serving
from serving.v2 import health as v2_health
from serving.v2 import router as v2_router

log = logging.getLogger("govern")

API_PREFIX = "/api/v1"


def _check_schema(app: FastAPI) -> None:
    """Refuse to serve on a schema that is not at head; tolerate a database that is down.

    A database that is down at start-up may come back, and /readyz says so meanwhile. A
    database at the wrong revision will not fix itself, so that stops the start.
    """
    try:
        ensure_at_head(app.state.engine)
    except Exception as exc:
        if not is_connection_error(exc):
            raise
        log.warning("database unreachable at start-up; /readyz answers 503 until it is back")


def _recover_jobs(app: FastAPI) -> None:
    try:
        runs = fail_interrupted_runs(app.state.sessions)
        rebuilds = fail_interrupted_rebuilds(app.state.sessions)
    except Exception as exc:
        if not is_connection_error(exc):
            raise
        return
    if runs or rebuilds:
        log.warning("marked %d training run(s), %d rebuild(s) interrupted: failed", runs, rebuilds)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _check_schema(app)
        _recover_jobs(app)
        app.state.executor = make_executor(settings)
        app.state.serving.start()
        if settings.environment != "test":
            preloading = preload_libraries()
            app.state.serving.warm()
            settle_after(preloading)
            app.state.scanner.start()
        try:
            yield
        finally:
            app.state.scanner.stop()
            app.state.serving.stop()
            app.state.explainers.shutdown()
            app.state.executor.shutdown()
            engine.dispose()

    app = FastAPI(
        title="govern",
        version=__version__,
        summary="Lineage-first model governance and audit",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.clock = utcnow  # the time casework clocks read; tests move it
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    # Single-statement reads (the key check) need no transaction of their own.
    app.state.reads = session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))
    app.state.serving = Serving.create(settings, app.state.sessions)
    app.state.scanner = Scanner(app.state.sessions, settings)
    app.state.keys = KeyCache(
        partial(authenticate_token, app.state.reads), settings.auth_cache_ttl_s
    )
    # Each key's share of expensive work: new explanations and rebuilds.
    app.state.limiter = KeyLimiter(
        settings.explain_concurrency_per_key, settings.explain_rate_per_minute
    )
    app.state.explainers = Explainers.create(
        app.state.serving, app.state.sessions, settings, app.state.limiter
    )

    register_error_handlers(app)
    _add_middleware(app, settings)

    # Routes are matched in order, and each level of router nesting matches again: predict
    # comes first, and every API router is included in the app itself, under the prefix.
    app.include_router(serving_router.predict_router, prefix=API_PREFIX)
    app.include_router(health.router)
    app.include_router(serving_router.metrics_router)
    app.include_router(v2_router)
    app.include_router(v2_health)
    app.include_router(console_router)
    app.include_router(console_casework)
    app.include_router(console_experiments)
    app.include_router(console_promotions)
    app.mount(STATIC, StaticFiles(directory=CONSOLE_DIR / "static"), name="console-static")
    app.state.error_pages = {PREFIX: error_page}
    for api_router in (
        keys_router,
        lineage_router,
        rebuild_router,
        serving_router.router,
        explain_router,
        fairness_router,
        audit_router,
        compliance_router,
        casework_router,
        experiments_router,
        promotion_router,
        lda_router,
    ):
        app.include_router(api_router, prefix=API_PREFIX)
    _document_errors(app)
    return app


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    # Innermost first: each add wraps the ones before it.
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_artifact_bytes,
        read_timeout_s=settings.body_read_timeout_s,
        upload_read_timeout_s=settings.upload_read_timeout_s,
    )
    # Predict slots go only to callers the gate admitted: first the key's share, then the
    # process's. An unknown key or a burst from one key can then never take the slots of others.
    app.add_middleware(PredictAdmission, max_inflight=settings.predict_max_inflight)
    app.add_middleware(KeyAdmission, max_per_key=settings.predict_max_inflight_per_key)
    # Key and role are checked from the headers before any body is read.
    app.add_middleware(
        AuthGate,
        routes=lambda: app.router.routes,
        keys=app.state.keys,
        sessions=ConsoleSessions(app.state.sessions, settings),
    )
    app.add_middleware(RefuseNul)


def _document_errors(app: FastAPI) -> None:
    """The served schema describes govern's real error body (see errors.document_errors)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(plain())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
