"""Explanation routes for one logged decision. Thin: the work is in ``explain.service``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from core.auth.models import Role
from core.auth.schemas import Principal
from core.deps import SessionDep, allow
from explain import schemas, service

router = APIRouter(tags=["explanations"])

# Appeals tooling may explain any decision id it is given; it may not list decisions.
Reader = Annotated[Principal, Depends(allow(Role.compliance, Role.appeals, Role.data_scientist))]
Seed = Annotated[
    int | None,
    Query(ge=0, le=2**32 - 1, description="Defaults to the model's recorded seeds.explain."),
]


def _explainers(request: Request) -> service.Explainers:
    explainers: service.Explainers = request.app.state.explainers
    return explainers


@router.get(
    "/decisions/{decision_id}/explanations/shap",
    response_model=schemas.ShapExplanation,
    response_model_exclude_unset=True,
    summary="SHAP attributions per original feature, from the model version that decided",
)
def shap_explanation(
    decision_id: str,
    session: SessionDep,
    principal: Reader,
    request: Request,
    seed: Seed = None,
) -> dict[str, Any]:
    return service.explain(
        session, _explainers(request), decision_id, "shap", {"seed": seed}, principal
    )


@router.get(
    "/decisions/{decision_id}/explanations/anchor",
    response_model=schemas.AnchorExplanation,
    response_model_exclude_unset=True,
    summary="An anchor rule (alibi AnchorTabular) with its precision and coverage",
)
def anchor_explanation(
    decision_id: str,
    session: SessionDep,
    principal: Reader,
    request: Request,
    threshold: Annotated[float, Query(ge=0.5, le=0.99)] = 0.95,
    seed: Seed = None,
) -> dict[str, Any]:
    params = {"threshold": threshold, "seed": seed}
    return service.explain(session, _explainers(request), decision_id, "anchor", params, principal)


@router.get(
    "/decisions/{decision_id}/explanations/counterfactual",
    response_model=schemas.CounterfactualExplanation,
    response_model_exclude_unset=True,
    summary="Up to k diverse changes that flip the decision, within the spec's constraints",
)
def counterfactual_explanation(
    decision_id: str,
    session: SessionDep,
    principal: Reader,
    request: Request,
    k: Annotated[int, Query(ge=1, le=10)] = 3,
    seed: Seed = None,
) -> dict[str, Any]:
    params = {"k": k, "seed": seed}
    return service.explain(
        session, _explainers(request), decision_id, "counterfactual", params, principal
    )


@router.get(
    "/decisions/{decision_id}/robustness",
    response_model=schemas.RobustnessReport,
    response_model_exclude_unset=True,
    summary="The smallest perturbation that flips the decision (ART HopSkipJump) and a verdict",
)
def robustness_report(
    decision_id: str,
    session: SessionDep,
    principal: Reader,
    request: Request,
    seed: Seed = None,
) -> dict[str, Any]:
    params = {
        "seed": seed,
        "fragile_below": request.app.state.settings.robustness_fragile_below,
    }
    return service.explain(
        session, _explainers(request), decision_id, "robustness", params, principal
    )


@router.get(
    "/decisions/{decision_id}/reasons",
    response_model=schemas.AdverseActionReasons,
    response_model_exclude_unset=True,
    summary="Adverse-action reason codes (at most four) for an unfavourable decision",
)
def adverse_action_reasons(
    decision_id: str, session: SessionDep, principal: Reader, request: Request
) -> dict[str, Any]:
    return service.reasons_for(session, _explainers(request), decision_id, principal)


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overrides: dict[str, Any] = Field(
        default_factory=dict, description="Feature values to change before scoring again."
    )


@router.post(
    "/decisions/{decision_id}/replay",
    response_model=schemas.Replay,
    response_model_exclude_unset=True,
    summary="Score the logged input again on the same model version, optionally with changes",
)
def replay_decision(
    decision_id: str,
    session: SessionDep,
    principal: Reader,
    request: Request,
    body: Annotated[ReplayIn | None, Body()] = None,
) -> dict[str, Any]:
    overrides = body.overrides if body else {}
    return service.what_if(session, request.app.state.serving, decision_id, overrides, principal)
