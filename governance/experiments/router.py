"""Experiments: thin routes over ``governance.experiments.service``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from sqlmodel import Session

from core.auth.models import Role
from core.auth.schemas import Principal
from core.deps import SessionDep, allow, now_of
from core.pagination import PageDep
from governance.experiments import schemas, service
from governance.experiments.models import Experiment

router = APIRouter(tags=["experiments"])

Runner = Annotated[Principal, Depends(allow(Role.data_scientist))]
Reader = Annotated[Principal, Depends(allow(Role.data_scientist, Role.compliance))]
ExperimentId = Annotated[str, Path(max_length=64)]


def _report(session: Session, request: Request, experiment_id: str, principal: Principal) -> Any:
    body = service.report(
        session, request.app.state.settings, experiment_id, principal, now_of(request)
    )
    return jsonable_encoder(body)


def _summary(e: Experiment) -> dict[str, Any]:
    return {
        "experiment_id": e.experiment_id,
        "name": e.name,
        "endpoint": e.endpoint,
        "status": e.status,
        "version": e.version,
        "metric": e.config["metric"]["kind"],
        "stopping": e.config["stopping"]["kind"],
        "decision": (e.decided or {}).get("decision", "continue"),
        "created_at": e.created_at,
        "created_by": e.created_by,
        "decided_at": e.decided_at,
        "ended_at": e.ended_at,
    }


@router.post(
    "/experiments",
    status_code=201,
    response_model=schemas.ExperimentReport,
    summary="Declare an experiment: the champion against canary or shadow challengers, routed "
    "on the endpoint at once",
)
def create_experiment(
    body: schemas.ExperimentIn, request: Request, session: SessionDep, principal: Runner
) -> Any:
    experiment = service.create(session, body, principal, now_of(request))
    request.app.state.serving.forget(body.endpoint)
    return _report(session, request, experiment.experiment_id, principal)


@router.get(
    "/experiments",
    response_model=schemas.ExperimentList,
    summary="Experiments, newest first",
)
def list_experiments(
    session: SessionDep,
    principal: Reader,
    page: PageDep,
    endpoint: Annotated[str | None, Query(max_length=100)] = None,
) -> Any:
    rows = service.listing(session, principal, page, endpoint)
    return jsonable_encoder(
        {
            "data": [_summary(e) for e in rows],
            "count": len(rows),
            "next_cursor": rows[-1].id if len(rows) == page.limit else None,
        }
    )


@router.get(
    "/experiments/{experiment_id}",
    response_model=schemas.ExperimentReport,
    summary="The experiment's report from the decision log and outcomes: the arms, the metric "
    "with intervals, the test and its decision, the guardrails, the split",
)
def experiment_report(
    experiment_id: ExperimentId, request: Request, session: SessionDep, principal: Reader
) -> Any:
    return _report(session, request, experiment_id, principal)


@router.patch(
    "/experiments/{experiment_id}",
    response_model=schemas.ExperimentReport,
    summary="A new version of the experiment's name or guardrails (its arms, metric and "
    "stopping rule are fixed)",
)
def change_experiment(
    experiment_id: ExperimentId,
    body: schemas.ExperimentChange,
    request: Request,
    session: SessionDep,
    principal: Runner,
) -> Any:
    service.change(session, experiment_id, body, principal, now_of(request))
    return _report(session, request, experiment_id, principal)


@router.post(
    "/experiments/{experiment_id}/end",
    response_model=schemas.ExperimentReport,
    summary="End the experiment, with a reason; by default the endpoint gets back its routing "
    "from before",
)
def end_experiment(
    experiment_id: ExperimentId,
    body: schemas.EndIn,
    request: Request,
    session: SessionDep,
    principal: Runner,
) -> Any:
    experiment = service.end(
        session, experiment_id, body.reason, body.restore_routing, principal, now_of(request)
    )
    request.app.state.serving.forget(experiment.endpoint)
    return _report(session, request, experiment_id, principal)


@router.get(
    "/experiments/{experiment_id}/history",
    response_model=schemas.ExperimentHistory,
    summary="Every version of the experiment's configuration and every change, from the "
    "governance chain",
)
def experiment_history(experiment_id: ExperimentId, session: SessionDep, principal: Reader) -> Any:
    return jsonable_encoder(service.history(session, experiment_id, principal))
