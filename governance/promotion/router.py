"""Promotions and rollbacks: thin routes over ``governance.promotion.service``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder

from core.auth.models import Role
from core.auth.schemas import Principal
from core.deps import AdminOnly, SessionDep, allow, now_of
from core.pagination import PageDep
from governance.promotion import schemas, service

router = APIRouter(tags=["promotions"])

Requester = Annotated[Principal, Depends(allow(Role.data_scientist))]
Validator = Annotated[Principal, Depends(allow(Role.validator))]
Reader = Annotated[Principal, Depends(allow(Role.data_scientist, Role.compliance, Role.validator))]
Watcher = Annotated[Principal, Depends(allow(Role.data_scientist, Role.validator))]
PromotionId = Annotated[str, Path(max_length=64)]
ModelName = Annotated[str, Path(max_length=100)]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post(
    "/models/{name}/versions/{version}/promotion",
    status_code=202,
    response_model=schemas.PromotionPublic,
    # The evidence is shown as it was hashed: no default is added to it.
    response_model_exclude_unset=True,
    summary="Ask for a version to serve an endpoint live: the evidence is gathered as a job "
    "(202; poll the promotion for its progress) and hashed into the log, then a validator "
    "approves or rejects",
)
def request_promotion(
    name: ModelName,
    version: Version,
    body: schemas.PromotionIn,
    request: Request,
    response: Response,
    background: BackgroundTasks,
    session: SessionDep,
    principal: Requester,
) -> Any:
    promotion = service.request(
        session,
        principal,
        name=name,
        number=version,
        endpoint=body.endpoint,
        rationale=body.rationale,
        experiment_id=body.experiment_id,
        robustness_decisions=body.robustness_decisions,
        now=now_of(request),
        rollout=body.rollout.model_dump(mode="json") if body.rollout is not None else None,
    )
    state = request.app.state
    # The response is sent after the request's transaction commits; the job runs after it.
    background.add_task(
        service.gather,
        state.sessions,
        state.settings,
        state.explainers,
        principal,
        promotion.promotion_id,
        state.clock,
    )
    response.headers["Location"] = f"/api/v1/promotions/{promotion.promotion_id}"
    return jsonable_encoder(service.public(session, promotion))


@router.get(
    "/promotions",
    response_model=schemas.PromotionList,
    response_model_exclude_unset=True,
    summary="Promotions, newest first",
)
def list_promotions(
    session: SessionDep,
    principal: Reader,
    page: PageDep,
    status: Annotated[
        Literal[
            "gathering", "requested", "rolling_out", "rejected", "applied", "rolled_back", "failed"
        ]
        | None,
        Query(),
    ] = None,
) -> Any:
    rows = service.listing(session, principal, page, status)
    return jsonable_encoder(
        {
            "data": [service.public(session, p, evidence_too=False) for p in rows],
            "count": len(rows),
            "next_cursor": rows[-1].id if len(rows) == page.limit else None,
        }
    )


@router.get(
    "/promotions/{promotion_id}",
    response_model=schemas.PromotionPublic,
    # The evidence is shown as it was hashed: no default is added to it.
    response_model_exclude_unset=True,
    summary="A promotion with its evidence and every step",
)
def get_promotion(promotion_id: PromotionId, session: SessionDep, principal: Reader) -> Any:
    return jsonable_encoder(service.read(session, promotion_id, principal))


@router.post(
    "/promotions/{promotion_id}/approve",
    response_model=schemas.PromotionPublic,
    # The evidence is shown as it was hashed: no default is added to it.
    response_model_exclude_unset=True,
    summary="A validator approves, with a rationale: the version goes to production and the "
    "endpoint's live route to it, at once",
)
def approve_promotion(
    promotion_id: PromotionId,
    body: schemas.Rationale,
    request: Request,
    session: SessionDep,
    principal: Validator,
) -> Any:
    promotion = service.approve(session, promotion_id, body.rationale, principal, now_of(request))
    request.app.state.serving.forget(promotion.endpoint)
    return jsonable_encoder(service.public(session, promotion))


@router.post(
    "/promotions/{promotion_id}/reject",
    response_model=schemas.PromotionPublic,
    # The evidence is shown as it was hashed: no default is added to it.
    response_model_exclude_unset=True,
    summary="A validator rejects, with a rationale",
)
def reject_promotion(
    promotion_id: PromotionId,
    body: schemas.Rationale,
    request: Request,
    session: SessionDep,
    principal: Validator,
) -> Any:
    promotion = service.reject(session, promotion_id, body.rationale, principal, now_of(request))
    return jsonable_encoder(service.public(session, promotion))


@router.post(
    "/promotions/{promotion_id}/waive",
    response_model=schemas.PromotionPublic,
    # The evidence is shown as it was hashed: no default is added to it.
    response_model_exclude_unset=True,
    summary="An admin waives the evidence or the approval, in writing (kept in the log)",
)
def waive_promotion(
    promotion_id: PromotionId,
    body: schemas.WaiverIn,
    request: Request,
    session: SessionDep,
    principal: AdminOnly,
) -> Any:
    promotion = service.waive(
        session, promotion_id, body.what, body.reason, principal, now_of(request)
    )
    request.app.state.serving.forget(promotion.endpoint)
    return jsonable_encoder(service.public(session, promotion))


@router.post(
    "/promotions/{promotion_id}/rollout",
    response_model=schemas.RolloutTick,
    response_model_exclude_unset=True,
    summary="Look at a roll-out's current step now (the alert scans do, every "
    "GOV_PROBE_SCAN_INTERVAL_S): roll back on a breach, step up when every guardrail holds",
)
def rollout_tick(
    promotion_id: PromotionId, request: Request, session: SessionDep, principal: Watcher
) -> Any:
    promotion, action, reason = service.tick(
        session, request.app.state.settings, promotion_id, principal, now_of(request)
    )
    request.app.state.serving.forget(promotion.endpoint)
    return jsonable_encoder(
        {"promotion": service.public(session, promotion), "action": action, "reason": reason}
    )


@router.post(
    "/endpoints/{name}/rollback",
    response_model=schemas.RolledBack,
    summary="Return the endpoint to its previous configuration (kept as a new one, logged)",
)
def rollback_endpoint(
    name: ModelName,
    body: schemas.RollbackIn,
    request: Request,
    session: SessionDep,
    principal: Requester,
) -> Any:
    rolled = service.rollback(session, name, body.reason, principal, now_of(request))
    request.app.state.serving.forget(name)
    return rolled
