from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, status
from fastapi.responses import Response

from core.audit import access
from core.auth.models import Role
from core.auth.schemas import Principal
from core.deps import SessionDep, allow, public
from lineage.spec import NAME_PATTERN
from serving import endpoints, lookups, metrics, outcomes
from serving import predict as predict_path
from serving.decoding import decode_json
from serving.outcomes import BulkOutcomesIn, OutcomeIn, OutcomePublic
from serving.schemas import (
    DecisionOut,
    DecisionRecordPublic,
    DecisionsOut,
    EndpointConfigIn,
    EndpointPublic,
    PredictRequest,
)

router = APIRouter()
# The hot path on its own, so the app can match it before any other route (governance.app).
predict_router = APIRouter()
metrics_router = APIRouter(dependencies=[Depends(public)])

EndpointName = Annotated[str, Path(pattern=NAME_PATTERN)]
Changer = Annotated[Principal, Depends(allow(Role.data_scientist))]
Viewer = Annotated[Principal, Depends(allow(Role.data_scientist, Role.compliance))]
Predictor = Annotated[Principal, Depends(allow(Role.predictor))]
DecisionReader = Annotated[
    Principal, Depends(allow(Role.compliance, Role.appeals, Role.data_scientist))
]


@router.put(
    "/endpoints/{name}",
    response_model=EndpointPublic,
    # A configuration shows exactly its stored keys: no default is added to an older one.
    response_model_exclude_unset=True,
    tags=["endpoints"],
    summary="Set an endpoint's routes, shadows and stickiness; every change is kept",
)
def put_endpoint(
    name: EndpointName,
    body: EndpointConfigIn,
    session: SessionDep,
    principal: Changer,
    request: Request,
) -> EndpointPublic:
    endpoints.put_endpoint(session=session, name=name, config_in=body, actor=principal.key_id)
    request.app.state.serving.forget(name)
    return endpoints.endpoint_public(session, name)


@router.get("/endpoints", response_model=list[str], tags=["endpoints"])
def list_endpoints(session: SessionDep, _principal: Viewer) -> list[str]:
    return endpoints.list_endpoints(session)


@router.get(
    "/endpoints/{name}",
    response_model=EndpointPublic,
    response_model_exclude_unset=True,
    tags=["endpoints"],
)
def get_endpoint(name: EndpointName, session: SessionDep, _principal: Viewer) -> EndpointPublic:
    return endpoints.endpoint_public(session, name)


PREDICT_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": PredictRequest.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
            }
        },
    }
}


@predict_router.post(
    "/endpoints/{name}/predict",
    tags=["predict"],
    summary="Score one instance or a batch; every answer is durably logged first",
    responses={200: {"model": DecisionOut | DecisionsOut}, 422: {}, 503: {}},
    openapi_extra=PREDICT_OPENAPI,
)
async def predict(name: EndpointName, request: Request, principal: Predictor) -> Response:
    serving = request.app.state.serving
    async with predict_path.measured(serving, name) as started:
        decoded = decode_json(await request.body())
        decided = await predict_path.predict(serving, name, decoded, principal, started)
    # Serialized once, in pydantic's core: the answers were built from checked values.
    if decided.request.instances is not None:
        answer = DecisionsOut(decisions=decided.decisions).model_dump_json()
    else:
        answer = decided.decisions[0].model_dump_json()
    return Response(answer, media_type="application/json")


@router.get(
    "/decisions/{decision_id}",
    response_model=DecisionRecordPublic,
    tags=["decisions"],
    summary="One logged record with its model's lineage; protected attributes for compliance only",
)
def get_decision(
    decision_id: str, session: SessionDep, principal: DecisionReader, request: Request
) -> Response:
    record = lookups.decision_public(
        session, lookups.get_record(session, decision_id), principal, request.app.state.serving
    )
    access.record(session, principal, "decision.read", target=decision_id)
    # Already validated: serialized once, in pydantic's core, not validated again on the way out.
    return Response(record.model_dump_json(), media_type="application/json")


@metrics_router.get(
    "/metrics",
    tags=["health"],
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def prometheus_metrics() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


OutcomeReader = Annotated[
    Principal, Depends(allow(Role.outcomes, Role.data_scientist, Role.compliance, Role.appeals))
]
OutcomeWriter = Annotated[Principal, Depends(allow(Role.outcomes, Role.data_scientist))]


@router.post(
    "/decisions/{decision_id}/outcome",
    response_model=OutcomePublic,
    status_code=status.HTTP_201_CREATED,
    tags=["outcomes"],
    summary="Record what actually happened after a decision (appended; a correction is new)",
)
def record_outcome(
    decision_id: str, body: OutcomeIn, session: SessionDep, principal: OutcomeWriter
) -> OutcomePublic:
    [created] = outcomes.record_outcomes(
        session, [(decision_id, body)], principal.key_id, bulk=False
    )
    return created


@router.get(
    "/decisions/{decision_id}/outcomes",
    response_model=list[OutcomePublic],
    tags=["outcomes"],
    summary="Every outcome recorded for a decision, oldest first; the last one counts",
)
def outcome_history(
    decision_id: str, session: SessionDep, principal: OutcomeReader
) -> list[OutcomePublic]:
    found = outcomes.history(session, decision_id)
    access.record(session, principal, "outcome.read", target=decision_id, rows=len(found))
    return found


@router.post(
    "/outcomes",
    response_model=list[OutcomePublic],
    status_code=status.HTTP_201_CREATED,
    tags=["outcomes"],
    summary="Record many outcomes at once (up to 10,000); all or nothing",
)
def record_outcomes(
    body: BulkOutcomesIn, session: SessionDep, principal: OutcomeWriter
) -> list[OutcomePublic]:
    items = [(item.decision_id, item) for item in body.outcomes]
    return outcomes.record_outcomes(session, items, principal.key_id, bulk=True)
