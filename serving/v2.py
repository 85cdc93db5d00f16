"""The Open Inference Protocol (KServe V2) over the same routing and the same decision log.

An inference request carries one tensor per feature, named after it (shape [N] or [N, 1]; BYTES
for categories). Request parameters may carry ``subject_id``/``context`` (one instance) or
``subject_ids``/``contexts`` (a batch). The response has ``label``, ``score`` and
``decision_id`` outputs; nothing is answered before its decisions are committed.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from core.auth.models import Role
from core.auth.schemas import Principal
from core.deps import allow, public
from core.errors import GovernanceError, InvalidInput
from lineage.spec import NAME_PATTERN
from serving import metrics, service
from serving.service import Serving

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


def decode(body: Any) -> dict[str, Any]:
    """V2 request -> govern's predict body ({features...} or {instances: [...]})."""
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
    return {"instances": instances}


def _datatype(feature: dict[str, Any]) -> str:
    """Numbers are FP64; categories are BYTES, or INT64 when every code is an integer."""
    if feature["type"] == "numeric":
        return "FP64"
    codes = feature.get("categories") or [""]
    return (
        "INT64" if all(isinstance(c, int) and not isinstance(c, bool) for c in codes) else "BYTES"
    )


@health.get("/live")
def live() -> dict[str, bool]:
    return {"live": True}


@health.get("/ready")
def ready() -> dict[str, bool]:
    return {"ready": True}


@router.get("/models/{name}", summary="V2 model metadata for an endpoint's live model")
def metadata(name: Name, request: Request, _principal: Predictor) -> dict[str, Any]:
    serving: Serving = request.app.state.serving
    config = serving.config_for(name)
    route = config["routes"][0]
    model = serving.model(route["model"], route["version"])
    label_type = "INT64" if all(isinstance(c, int) for c in model.schema["classes"]) else "BYTES"
    return {
        "name": name,
        "versions": [f"{r['model']}:{r['version']}" for r in config["routes"]],
        "platform": "govern-sklearn",
        "inputs": [
            {
                "name": f["name"],
                "datatype": _datatype(f),
                "shape": [-1],
            }
            for f in model.schema["features"]
        ],
        "outputs": [
            {"name": "label", "datatype": label_type, "shape": [-1]},
            {"name": "score", "datatype": "FP64", "shape": [-1]},
            {"name": "decision_id", "datatype": "BYTES", "shape": [-1]},
        ],
    }


@router.get("/models/{name}/ready", summary="V2 readiness: the endpoint's models load")
def model_ready(name: Name, request: Request, _principal: Predictor) -> dict[str, Any]:
    serving: Serving = request.app.state.serving
    config = serving.config_for(name)
    for route in config["routes"]:
        serving.model(route["model"], route["version"])
    return {"name": name, "ready": True}


@router.post("/models/{name}/infer", summary="V2 inference with the same routing and logging")
async def infer(name: Name, request: Request, principal: Predictor) -> JSONResponse:
    started = time.perf_counter()
    serving: Serving = request.app.state.serving
    status_code = 200
    try:
        raw = await request.body()
        try:
            body = json.loads(raw)
            translated = decode(body)
        except (ValueError, RecursionError):
            raise await service.reject(
                serving, name, principal, None, _problem("body", "not valid JSON")
            ) from None
        except InvalidInput as exc:
            raise await service.reject(serving, name, principal, body, exc) from None
        outs, _ = await service.predict(
            serving, name, json.dumps(translated).encode(), principal, started
        )
    except GovernanceError as exc:
        status_code = exc.status_code
        raise
    finally:
        label = request.app.state.serving.endpoint_label(name)
        metrics.PREDICT_REQUESTS.labels(label, str(status_code)).inc()
        metrics.PREDICT_LATENCY.labels(label).observe(time.perf_counter() - started)
    labels = [o.label for o in outs]
    label_type = (
        "INT64" if all(isinstance(x, int) and not isinstance(x, bool) for x in labels) else "BYTES"
    )
    n = len(outs)
    return JSONResponse(
        {
            "model_name": name,
            "model_version": f"{outs[0].model.name}:{outs[0].model.version}",
            "id": body.get("id") if isinstance(body.get("id"), str) else outs[0].decision_id,
            "parameters": {
                "routes": [o.route for o in outs],
                "models": [f"{o.model.name}:{o.model.version}" for o in outs],
                "sha256": [o.model.sha256 for o in outs],
            },
            "outputs": [
                {
                    "name": "label",
                    "shape": [n],
                    "datatype": label_type,
                    "data": labels if label_type == "INT64" else [str(x) for x in labels],
                },
                {
                    "name": "score",
                    "shape": [n],
                    "datatype": "FP64",
                    "data": [o.score for o in outs],
                },
                {
                    "name": "decision_id",
                    "shape": [n],
                    "datatype": "BYTES",
                    "data": [o.decision_id for o in outs],
                },
            ],
        }
    )
