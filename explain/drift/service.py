"""The drift report: which model versions served the window, and for each, its live inputs
against its own training rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.audit import access
from core.auth.schemas import Principal
from core.errors import InvalidInput
from explain.context import ModelContext
from explain.drift import stats as drift
from explain.service import Explainers
from lineage import registry
from serving.endpoints import endpoint_row

DECISIONS = drift.DECISIONS


def explain_seed(lineage: dict[str, Any] | None) -> int:
    """The permutations' seed: the model's recorded explain seed (``seeds.explain`` of the
    spec it was trained from), or drift.DEFAULT_SEED for a model registered from outside."""
    seeds = ((lineage or {}).get("spec") or {}).get("seeds") or {}
    value = seeds.get("explain")
    return int(value) if isinstance(value, int) and value >= 0 else drift.DEFAULT_SEED


def _window(
    endpoint: str,
    since: datetime | None,
    until: datetime | None,
    model: str | None,
    version: int | None,
) -> list[Any]:
    """The filter of the window's decisions: the endpoint's, in [since, until), optionally of one
    model (and version)."""
    if since is not None and until is not None and since >= until:
        raise InvalidInput.at("since", "must be before until")
    if version is not None and model is None:
        raise InvalidInput.at("version", "give model too")
    where: list[Any] = [DECISIONS.c.kind == "decision", DECISIONS.c.endpoint == endpoint]
    if since is not None:
        where.append(DECISIONS.c.created_at >= since)
    if until is not None:
        where.append(DECISIONS.c.created_at < until)
    if model is not None:
        where.append(DECISIONS.c.model == model)
    if version is not None:
        where.append(DECISIONS.c.version == version)
    return where


def _served(session: Session, where: list[Any]) -> list[tuple[str, int]]:
    """The model versions that made the window's decisions, by name and number."""
    rows = session.execute(
        sa.select(DECISIONS.c.model, DECISIONS.c.version, sa.func.count())
        .where(*where)
        .group_by(DECISIONS.c.model, DECISIONS.c.version)
        .order_by(DECISIONS.c.model, DECISIONS.c.version)
    ).all()
    return [(name, number) for name, number, _count in rows]


def _training_grids(context: ModelContext) -> tuple[list[drift.Grid], dict[str, Any]]:
    """The version's grids and its training rows' counts on them, built once per context."""

    def build() -> tuple[list[drift.Grid], dict[str, Any]]:
        grid_list = drift.grids(context.input_schema.features, context.train)
        return grid_list, {g.name: drift.training_counts(g, context.train) for g in grid_list}

    grids: tuple[list[drift.Grid], dict[str, Any]] = context.cached("drift-grids", build)
    return grids


@dataclass(frozen=True)
class _Tests:
    """How each version's live inputs are compared with its training rows."""

    alpha: float
    psi_threshold: float
    min_samples: int
    resamples: int


def _version_drift(
    session: Session,
    connection: sa.Connection,
    explainers: Explainers,
    where: list[Any],
    served: tuple[str, int],
    tests: _Tests,
    own_only: bool = True,
) -> dict[str, Any]:
    """One version's live inputs in the window against its own training rows (with
    ``own_only=False``, every decision in the window, whichever model made it)."""
    name, number = served
    _m, found = registry.get_version(session=session, name=name, version=number)
    context = explainers.contexts.get(name, number, found.artifact_sha256)
    grid_list, train_counts = _training_grids(context)
    mine = [DECISIONS.c.model == name, DECISIONS.c.version == number] if own_only else []
    n, live = drift.drift_counts(connection, grid_list, [*where, *mine])
    compared = drift.compare(
        grid_list,
        train_counts,
        live,
        tests.alpha,
        tests.psi_threshold,
        min_samples=tests.min_samples,
        resamples=tests.resamples,
        seed=explain_seed(found.lineage),
    )
    return {
        "model": name,
        "version": number,
        "n": n,
        "training": {
            "dataset": context.dataset,
            "rows": len(context.train),
            "source": context.rows_source,
        },
        **compared,
    }


def report(
    session: Session,
    principal: Principal,
    explainers: Explainers,
    *,
    endpoint: str,
    since: datetime | None,
    until: datetime | None,
    model: str | None,
    version: int | None,
    alpha: float,
    psi_threshold: float,
    min_samples: int = 30,
    resamples: int = 999,
) -> dict[str, Any]:
    endpoint_row(session, endpoint)
    where = _window(endpoint, since, until, model, version)
    tests = _Tests(alpha, psi_threshold, min_samples, resamples)
    connection = session.connection()
    versions = [
        _version_drift(session, connection, explainers, where, served, tests)
        for served in _served(session, where)
    ]
    n = sum(int(v["n"]) for v in versions)
    verdict, reasons = drift.window_verdict(versions)
    access.record(
        session,
        principal,
        "drift.report",
        target=endpoint,
        params={
            "since": str(since) if since else None,
            "until": str(until) if until else None,
            "model": model,
            "version": version,
            "alpha": alpha,
            "psi_threshold": psi_threshold,
            "min_samples": min_samples,
        },
        rows=n,
    )
    return {
        "endpoint": endpoint,
        "since": since,
        "until": until,
        "n": n,
        "verdict": verdict,
        "verdict_reasons": reasons,
        "drifted": verdict == "drifted",
        "versions": versions,
        "method": drift.__doc__.split("\n\n")[0] if drift.__doc__ else None,
    }


def against_version(
    session: Session,
    explainers: Explainers,
    *,
    endpoint: str,
    reference: tuple[str, int],
    since: datetime | None,
    alpha: float,
    psi_threshold: float,
    min_samples: int = 30,
    resamples: int = 999,
) -> dict[str, Any]:
    """The endpoint's decisions since ``since``, whichever model made them, against the training
    rows of ``reference``: how a candidate's training data compares with the traffic it would
    serve (a promotion's evidence)."""
    endpoint_row(session, endpoint)
    where = _window(endpoint, since, None, None, None)
    tests = _Tests(alpha, psi_threshold, min_samples, resamples)
    found = _version_drift(
        session, session.connection(), explainers, where, reference, tests, own_only=False
    )
    verdict, reasons = drift.window_verdict([found])
    return {**found, "verdict": verdict, "verdict_reasons": reasons}
