"""GET /api/v1/fairness: bias over the logged decisions and their outcomes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from core.auth.models import Role
from core.auth.schemas import Principal
from core.deps import SessionDep, allow
from explain.drift import service as drift_service
from explain.drift.schemas import DriftReport
from explain.fairness import service as fairness_service
from explain.fairness.schemas import FairnessReport

router = APIRouter(tags=["fairness"])

# Fairness reports read protected attributes: compliance (and admin) only.
Compliance = Annotated[Principal, Depends(allow(Role.compliance))]


@router.get(
    "/fairness",
    response_model=FairnessReport,
    response_model_exclude_unset=True,
    summary="Selection rates, error rates and disparity by protected group, overall and by "
    "period, with a verdict (holds, violated, not_assessable) and its reasons; groups below the "
    "minimum size are compared and marked, never dropped; groups below the reporting threshold "
    "(GOV_MIN_CELL_SIZE) are marked",
)
def fairness_report(
    session: SessionDep,
    principal: Compliance,
    request: Request,
    endpoint: Annotated[str, Query(min_length=1, max_length=100)],
    attribute: Annotated[
        list[str], Query(min_length=1, description="Protected attribute(s); several intersect.")
    ],
    bins: Annotated[
        list[str] | None,
        Query(
            description="Bins for a numeric attribute, e.g. age:18,25,40,60,120 "
            "(default: the spec's)."
        ),
    ] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    model: Annotated[str | None, Query(max_length=100)] = None,
    version: Annotated[int | None, Query(ge=1)] = None,
    route: Annotated[str | None, Query(max_length=40)] = None,
    window: Literal["day", "week", "month"] | None = None,
    min_group_size: Annotated[
        int | None,
        Query(
            ge=1,
            le=1_000_000,
            description="No verdict rests on a smaller group (default "
            "GOV_FAIRNESS_MIN_GROUP_SIZE); such groups are still shown and compared, marked.",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        Query(
            ge=0,
            le=2**32 - 1,
            description="Seed of the Monte Carlo permutation test (default 0; recorded).",
        ),
    ] = None,
) -> dict[str, Any]:
    return fairness_service.report(
        session,
        principal,
        endpoint=endpoint,
        attributes=attribute,
        bins=bins or [],
        since=since,
        until=until,
        model=model,
        version=version,
        route=route,
        window=window,
        min_group_size=min_group_size or request.app.state.settings.fairness_min_group_size,
        min_cell_size=request.app.state.settings.min_cell_size,
        seed=seed,
    )


Monitor = Annotated[Principal, Depends(allow(Role.compliance, Role.data_scientist))]


@router.get(
    "/drift",
    tags=["drift"],
    response_model=DriftReport,
    response_model_exclude_unset=True,
    summary="Live inputs in a window against each serving model version's training rows; "
    "windows below the minimum size (GOV_DRIFT_MIN_SAMPLES) are insufficient_data",
)
def drift_report(
    session: SessionDep,
    principal: Monitor,
    request: Request,
    endpoint: Annotated[str, Query(min_length=1, max_length=100)],
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    model: Annotated[str | None, Query(max_length=100)] = None,
    version: Annotated[int | None, Query(ge=1)] = None,
    alpha: Annotated[
        float | None, Query(gt=0, lt=1, description="Default: GOV_DRIFT_ALPHA (0.05).")
    ] = None,
    psi_threshold: Annotated[
        float | None,
        Query(
            gt=0,
            le=10,
            description="The PSI threshold's floor; the threshold used is the larger of it and "
            "the PSI a window of this size reaches without drift. Default: "
            "GOV_DRIFT_PSI_THRESHOLD (0.1).",
        ),
    ] = None,
    min_samples: Annotated[
        int | None,
        Query(
            ge=2,
            le=1_000_000,
            description="Fewer decisions give insufficient_data. Default: "
            "GOV_DRIFT_MIN_SAMPLES (30).",
        ),
    ] = None,
) -> dict[str, Any]:
    settings = request.app.state.settings
    return drift_service.report(
        session,
        principal,
        request.app.state.explainers,
        endpoint=endpoint,
        since=since,
        until=until,
        model=model,
        version=version,
        alpha=settings.drift_alpha if alpha is None else alpha,
        psi_threshold=settings.drift_psi_threshold if psi_threshold is None else psi_threshold,
        min_samples=settings.drift_min_samples if min_samples is None else min_samples,
        resamples=settings.drift_resamples,
    )
