"""The Open Inference Protocol (KServe V2) over the same routing and the same decision log.

An inference request carries one tensor per feature, named after it (shape [N] or [N, 1]; BYTES
for categories). Request parameters may carry ``subject_id``/``context`` (one instance) or
``subject_ids``/``contexts`` (a batch). The response has ``label``, ``score`` and
``decision_id`` outputs; nothing is answered before its decisions are committed.

A request decodes straight to govern's typed ``PredictRequest`` (``decode``) and goes through
the same ``serving.predict`` as the native route: the same input gets the same decision, the
same record and, if refused, the same named problems.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from core.auth.models import Role
from core.auth.schemas import Principal
from core.deps import allow, public
from core.errors import InvalidInput
from lineage.input_schema import FeatureEntry
from lineage.spec import NAME_PATTERN
from serving import predict as predict_path
from serving.decoding import Decoded, Refused, validated
from serving.schemas import (
    DecisionOut,
    InferenceResponse,
    InferParameters,
    Live,
    MetadataTensor,
    ModelMetadata,
    ModelReady,
    Ready,
    ResponseOutput,
)
from serving.state import Serving

router = APIRouter(prefix="/v2", tags=["open inference protocol (v2)"])
health = APIRouter(
    prefix="/v2/health", tags=["open inference protocol (v2)"], dependencies=[Depends(public)]
)

Name = Annotated[str, Path(pattern=NAME_PATTERN)]
Predictor = Annotated[Principal, Depends(allow(Role.predictor))]

_NUMERIC = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
}


def _problem(field: str, message: str) -> InvalidInput:
    return InvalidInput.at(field, message, summary=f"invalid V2 request: {field}")


def _flat(data: Any) -> list[Any]:
    if isinstance(data, list) and data and all(isinstance(d, list) for d in data):
        return [x for row in data for x in row]
    if not isinstance(data, list):
        raise ValueError("data must be a list")
    return data


def _column(i: int, tensor: Any) -> tuple[str, list[Any]]:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise _problem(f"inputs.{i}", "each input needs a name")
    datatype = tensor.get("datatype")
    if datatype not in _NUMERIC | {"BYTES"}:
        raise _problem(f"inputs.{i}.datatype", f"unsupported datatype {datatype!r}")
    try:
        values = _flat(tensor.get("data"))
    except ValueError as exc:
        raise _problem(f"inputs.{i}.data", str(exc)) from None
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not shape or any(not isinstance(d, int) for d in shape):
        raise _problem(f"inputs.{i}.shape", "shape must be a list of integers")
    if shape[0] != len(values) or any(d != 1 for d in shape[1:]):
        raise _problem(
            f"inputs.{i}.shape",
            f"shape {shape} does not fit {len(values)} values of one feature",
        )
    return tensor["name"], values


def decode(raw: bytes) -> tuple[Any, Decoded]:
    """A V2 request body: (the body as parsed, for its id; the typed request or the refusal)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return None, Refused(_problem("body", "not valid JSON"), None)
    try:
        instances = _instances(body)
    except InvalidInput as exc:
        return body, Refused(exc, body)
    # Checked as govern's own body would be, so a problem is named the same way
    # (instances.0.subject_id), and logged with it if refused.
    return body, validated({"instances": instances})


def _instances(body: Any) -> list[dict[str, Any]]:
    """A V2 request's rows as govern's predict instances (features, subject_id, context)."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise _problem("inputs", "a V2 request needs a non-empty inputs list")
    columns = dict(_column(i, tensor) for i, tensor in enumerate(body["inputs"]))
    sizes = {len(v) for v in columns.values()}
    if len(sizes) != 1:
        raise _problem("inputs", "every input must have the same number of rows")
    rows = sizes.pop()
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise _problem("parameters", "must be an object")
    subject_ids = params.get("subject_ids") or (
        [params["subject_id"]] if "subject_id" in params else [None] * rows
    )
    contexts = params.get("contexts") or (
        [params["context"]] if "context" in params else [None] * rows
    )
    for name, given in (("subject_ids", subject_ids), ("contexts", contexts)):
        if not isinstance(given, list):
            raise _problem(f"parameters.{name}", "must be a list with one entry per row")
    if len(subject_ids) != rows or len(contexts) != rows:
        raise _problem("parameters", "subject_ids and contexts need one entry per row")
    instances = []
    for r in range(rows):
        instance: dict[str, Any] = {
            "features": {name: values[r] for name, values in columns.items()}
        }
        if subject_ids[r] is not None:
            instance["subject_id"] = subject_ids[r]
        if contexts[r] is not None:
            instance["context"] = contexts[r]
        instances.append(instance)
    return instances


def _datatype(feature: FeatureEntry) -> str:
    """Numbers are FP64; categories are BYTES, or INT64 when every code is an integer."""
    if feature.numeric:
        return "FP64"
    codes = feature.categories or [""]
    return (
        "INT64" if all(isinstance(c, int) and not isinstance(c, bool) for c in codes) else "BYTES"
    )


@health.get("/live", response_model=Live)
def live() -> Live:
    return Live(live=True)


@health.get("/ready", response_model=Ready)
def ready() -> Ready:
    return Ready(ready=True)


@router.get(
    "/models/{name}",
    response_model=ModelMetadata,
    summary="V2 model metadata for an endpoint's live model",
)
def metadata(name: Name, request: Request, _principal: Predictor) -> ModelMetadata:
    serving: Serving = request.app.state.serving
    config = serving.config_for(name)
    model = serving.model(config.live.model, config.live.version)
    label_type = "INT64" if all(isinstance(c, int) for c in model.input_schema.classes) else "BYTES"
    return ModelMetadata(
        name=name,
        versions=[f"{r.model}:{r.version}" for r in config.routes],
        platform="govern-sklearn",
        inputs=[
            MetadataTensor(name=f.name, datatype=_datatype(f), shape=[-1])
            for f in model.input_schema.features
        ],
        outputs=[
            MetadataTensor(name="label", datatype=label_type, shape=[-1]),
            MetadataTensor(name="score", datatype="FP64", shape=[-1]),
            MetadataTensor(name="decision_id", datatype="BYTES", shape=[-1]),
        ],
    )


@router.get(
    "/models/{name}/ready",
    response_model=ModelReady,
    summary="V2 readiness: the endpoint's models load",
)
def model_ready(name: Name, request: Request, _principal: Predictor) -> ModelReady:
    serving: Serving = request.app.state.serving
    config = serving.config_for(name)
    for route in config.routes:
        serving.model(route.model, route.version)
    return ModelReady(name=name, ready=True)


@router.post(
    "/models/{name}/infer",
    summary="V2 inference with the same routing and logging",
    responses={200: {"model": InferenceResponse}},
)
async def infer(name: Name, request: Request, principal: Predictor) -> JSONResponse:
    serving: Serving = request.app.state.serving
    async with predict_path.measured(serving, name) as started:
        body, decoded = decode(await request.body())
        decided = await predict_path.predict(serving, name, decoded, principal, started)
    return JSONResponse(_response(name, body, decided.decisions).model_dump(mode="json"))


def _response(name: str, body: dict[str, Any], outs: list[DecisionOut]) -> InferenceResponse:
    labels = [o.label for o in outs]
    label_type = (
        "INT64" if all(isinstance(x, int) and not isinstance(x, bool) for x in labels) else "BYTES"
    )
    n = len(outs)
    return InferenceResponse(
        model_name=name,
        model_version=f"{outs[0].model.name}:{outs[0].model.version}",
        id=body["id"] if isinstance(body.get("id"), str) else outs[0].decision_id,
        parameters=InferParameters(
            routes=[o.route for o in outs],
            models=[f"{o.model.name}:{o.model.version}" for o in outs],
            sha256=[o.model.sha256 for o in outs],
        ),
        outputs=[
            ResponseOutput(
                name="label",
                shape=[n],
                datatype=label_type,
                data=labels if label_type == "INT64" else [str(x) for x in labels],
            ),
            ResponseOutput(name="score", shape=[n], datatype="FP64", data=[o.score for o in outs]),
            ResponseOutput(
                name="decision_id",
                shape=[n],
                datatype="BYTES",
                data=[o.decision_id for o in outs],
            ),
        ],
    )
