"""Import an MLflow model version as a govern version, with its run's lineage.

``fetch`` reads, from a tracking server, one registered model version: the MLmodel file, the
model's data file in its flavour's safe format, its environment files, and the run behind it
(params, metrics, tags, dataset inputs, git commit). Nothing is unpickled:

* ``xgboost``: the model's JSON or UBJSON file (``lineage.native``);
* ``lightgbm``: a Booster's text model; a scikit-learn LGBMClassifier saved as skops has its
  Booster's text read out of the skops file's schema, without building any object;
* ``sklearn``: a skops file, loaded through ``lineage.safe_skops``'s allowlist of types.

A pickle or cloudpickle file, or any other flavour, is refused, saying how to log it safely.

``verify_data`` links the run's training data to a govern data version only when it can prove
it: the data version's rows, read again from DVC, have the digest MLflow recorded for the
dataset input. Anything else is recorded as ``unverified``, with the reason.

``import_version`` registers it through ``lineage.external`` (the same checks, evaluation and
artifact store), with ``source: mlflow`` and the run in the lineage.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import Field, ValidationError
from sqlmodel import Session, col, select

from core.errors import GovernanceError, InvalidInput, field_list, validation_details
from core.responses import Strict
from lineage import service
from lineage.artifacts import ArtifactStore
from lineage.data_sources import DataPolicy
from lineage.models import DatasetVersion, ModelVersion, RegisteredModel
from lineage.spec import (
    MAX_PUBLIC_CONTEXT,
    NAME_PATTERN,
    ContextKey,
    DatasetRef,
    Decision,
    Feature,
    Gate,
    Protected,
    Target,
)

log = logging.getLogger("govern.mlflow")

SOURCE: Final = "mlflow"
FLAVOURS = ("xgboost", "lightgbm", "sklearn")
MAX_PARAMS = 500  # run params recorded (MLflow allows more; a real run has far fewer)
MAX_TAGS = 200
SEED_PARAMS = ("random_state", "seed", "random_seed")
TRAINING_CONTEXTS = {"training", "train"}


class TrackingError(GovernanceError):
    """The tracking server could not be reached or answered with an error of its own."""

    status_code = 502
    code = "tracking_server_error"


class ImportDescription(Strict):
    """What MLflow does not know and govern needs: what the model decides, on which columns,
    and who it must be fair to. Features default to the model signature's columns."""

    description: str = Field(default="", max_length=2000)
    intended_use: str = Field(default="", max_length=4000)
    target: Target
    features: list[Feature] | None = Field(
        default=None,
        min_length=1,
        description="Default: the model signature's columns (double, float, long, integer: "
        "numeric; string, boolean: categorical)",
    )
    protected: list[Protected] = Field(default_factory=list)
    public_context: list[ContextKey] = Field(default_factory=list, max_length=MAX_PUBLIC_CONTEXT)
    decision: Decision = Decision()
    gate: Gate | None = None
    dataset: DatasetRef | None = Field(
        default=None,
        description="The data version it was trained on, when the run's dataset input is not "
        "a file govern knows; linked as unverified unless MLflow's digest matches it",
    )
    seeds: dict[str, int] | None = Field(
        default=None, description="When the run logged no seed parameter (random_state, seed)"
    )


class MlflowImport(Strict):
    """``POST /api/v1/imports/mlflow``: one MLflow model version, and what it decides."""

    tracking_uri: str = Field(min_length=1, max_length=2000)
    model: str = Field(min_length=1, max_length=500, description="The MLflow registered model")
    version: int = Field(ge=1, description="The MLflow model version")
    name: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="The govern model name (default: the MLflow name, if it is a valid one)",
    )
    describe: ImportDescription


@dataclass(frozen=True)
class Fetched:
    """One MLflow model version, as read from the tracking server."""

    tracking_uri: str
    model: str
    version: int
    model_uri: str
    model_id: str | None
    run_id: str
    flavour: str
    model_class: str
    artifact_format: str  # as lineage.external takes it: skops, xgboost-json, ...
    content: bytes
    run: dict[str, Any]
    datasets: list[dict[str, Any]]
    signature: list[dict[str, Any]] | None
    environment: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)  # data file and its sha256


def redacted(uri: str) -> str:
    """A tracking URI without any user or password in it."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return uri


@contextlib.contextmanager
def _bounded_requests(timeout_s: float) -> Iterator[None]:
    """MLflow retries a failing request seven times with back-off by default: minutes for an
    unreachable server. Within an import, two tries and the given timeout."""
    bounded = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, int(timeout_s))),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # govern shows its own progress
    }
    saved = {k: os.environ.get(k) for k in bounded}
    os.environ.update(bounded)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _refuse(field_name: str, message: str) -> InvalidInput:
    return InvalidInput(message, details=[{"field": field_name, "message": message}])


def parse_param(text: str) -> Any:
    """An MLflow param (always text) as the value it was: a number, a bool, None, a list or
    dict of those; anything else stays text. Never evaluates code (``ast.literal_eval``)."""
    if text in ("nan", "inf", "-inf"):
        return float(text)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


# -- reading the tracking server ----------------------------------------------------------------


def _flavour(mlmodel: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    flavors = mlmodel.get("flavors") or {}
    for name in FLAVOURS:
        if name in flavors:
            return name, flavors[name] or {}
    found = sorted(k for k in flavors if k != "python_function")
    raise _refuse(
        "version",
        f"the model has no sklearn, xgboost or lightgbm flavour (it has {found or 'none'}); "
        "govern imports only those, from their safe formats",
    )


def _format(flavour: str, conf: dict[str, Any]) -> str:
    """The safe format of the flavour's data file, or a refusal saying how to log it so."""
    if flavour == "xgboost":
        fmt = conf.get("model_format")
        if fmt in ("json", "ubj"):
            return f"xgboost-{fmt}"
        raise _refuse(
            "version",
            f"the XGBoost model is saved as {fmt!r}; govern reads json or ubj "
            "(mlflow.xgboost.log_model(..., model_format='json'))",
        )
    serialization = conf.get("serialization_format")
    if flavour == "lightgbm" and str(conf.get("model_class", "")).endswith("Booster"):
        return "lightgbm-text"
    if serialization == "skops":
        return "lightgbm-skops" if flavour == "lightgbm" else "skops"
    raise _refuse(
        "version",
        f"the {flavour} model is saved with {serialization or 'pickle'}, which runs code when "
        "it is loaded; govern reads only skops (log it with serialization_format='skops', "
        "MLflow's default outside Databricks)",
    )


def _inside(relative: str, what: str) -> str:
    """A path from the MLmodel file, which must stay inside the model's directory."""
    path = Path(relative)
    if path.is_absolute() or ".." in path.parts or not relative:
        raise _refuse("version", f"the MLmodel file names its {what} outside the model: refused")
    return path.as_posix()


def _download(client: Any, uri: str, relative: str, into: Path, max_bytes: int) -> bytes:
    from mlflow.artifacts import download_artifacts, list_artifacts

    parent, _, name = relative.rpartition("/")
    listed = list_artifacts(
        artifact_uri=f"{uri}/{parent}" if parent else uri, tracking_uri=client.tracking_uri
    )
    sizes = {Path(a.path).name: a.file_size for a in listed if not a.is_dir}
    if name not in sizes:
        raise _refuse("version", f"the model has no {relative}")
    size = sizes[name]
    if size is not None and size > max_bytes:
        raise _refuse(
            "version",
            f"{relative} is {size} bytes, over the {max_bytes} allowed (GOV_MAX_ARTIFACT_BYTES)",
        )
    local = download_artifacts(
        artifact_uri=f"{uri}/{relative}", dst_path=str(into), tracking_uri=client.tracking_uri
    )
    content = Path(local).read_bytes()
    if len(content) > max_bytes:
        raise _refuse("version", f"{relative} is over the {max_bytes} bytes allowed")
    return content


def _signature(mlmodel: dict[str, Any]) -> list[dict[str, Any]] | None:
    inputs = (mlmodel.get("signature") or {}).get("inputs")
    if not inputs:
        return None
    try:
        columns = json.loads(inputs)
    except (TypeError, ValueError):
        return None
    return [
        {"name": c["name"], "type": c.get("type")}
        for c in columns
        if isinstance(c, dict) and isinstance(c.get("name"), str)
    ] or None


def _environment(
    files: dict[str, bytes], mlmodel: dict[str, Any], conf: dict[str, Any]
) -> dict[str, Any]:
    python_env: dict[str, Any] = {}
    if "python_env.yaml" in files:
        with contextlib.suppress(yaml.YAMLError):
            python_env = yaml.safe_load(files["python_env.yaml"].decode("utf-8", "replace")) or {}
    requirements = [
        line.strip()
        for line in files.get("requirements.txt", b"").decode("utf-8", "replace").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return {
        "captured_by": "mlflow",
        "python": python_env.get("python") if isinstance(python_env, dict) else None,
        "requirements": requirements[:500],
        "mlflow_version": mlmodel.get("mlflow_version"),
        "library_version": conf.get("xgb_version")
        or conf.get("lgb_version")
        or conf.get("sklearn_version"),
    }


def _run(client: Any, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run = client.get_run(run_id)
    tags = dict(sorted(run.data.tags.items())[:MAX_TAGS])
    params = dict(sorted(run.data.params.items())[:MAX_PARAMS])

    def when(ms: int | None) -> str | None:
        return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()

    datasets = []
    for entry in run.inputs.dataset_inputs if run.inputs else []:
        dataset = entry.dataset
        context = next((t.value for t in entry.tags if t.key == "mlflow.data.context"), None)
        try:
            source = json.loads(dataset.source)
        except (TypeError, ValueError):
            source = {"text": str(dataset.source)[:2000]}
        datasets.append(
            {
                "name": dataset.name,
                "digest": dataset.digest,
                "source_type": dataset.source_type,
                "source": source,
                "context": context,
            }
        )
    recorded = {
        "run_id": run_id,
        "experiment_id": run.info.experiment_id,
        "run_name": run.info.run_name,
        "status": run.info.status,
        "user": run.info.user_id or tags.get("mlflow.user"),
        "started_at": when(run.info.start_time),
        "finished_at": when(run.info.end_time),
        "params": params,
        "metrics": {k: json_safe(v) for k, v in sorted(run.data.metrics.items())},
        "tags": tags,
        "git_commit": tags.get("mlflow.source.git.commit"),
        "source_name": tags.get("mlflow.source.name"),
    }
    return recorded, datasets


def fetch(
    tracking_uri: str, model: str, version: int, max_bytes: int, timeout_s: float = 30
) -> Fetched:
    """One registered model version, its files and its run, from the tracking server."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    with _bounded_requests(timeout_s), tempfile.TemporaryDirectory(prefix="govern-mlflow-") as tmp:
        try:
            found = client.get_model_version(model, str(version))
            uri = client.get_model_version_download_uri(model, str(version))
            into = Path(tmp)
            mlmodel_text = _download(client, uri, "MLmodel", into, 1_000_000)
            try:
                mlmodel = yaml.safe_load(mlmodel_text.decode("utf-8")) or {}
            except (yaml.YAMLError, UnicodeDecodeError):
                raise _refuse("version", "the model's MLmodel file is not YAML") from None
            flavour, conf = _flavour(mlmodel)
            fmt = _format(flavour, conf)
            data = _inside(str(conf.get("data") or conf.get("pickled_model") or ""), "data")
            content = _download(client, uri, data, into / "data", max_bytes)
            files = {}
            for name in ("python_env.yaml", "requirements.txt"):
                with contextlib.suppress(InvalidInput):
                    files[name] = _download(client, uri, name, into / "env", 1_000_000)
            run, datasets = _run(client, found.run_id) if found.run_id else ({}, [])
        except MlflowException as exc:
            if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                raise _refuse(
                    "version", f"MLflow has no model {model!r} version {version}"
                ) from None
            log.warning("MLflow import from %s failed: %s", redacted(tracking_uri), exc)
            raise TrackingError(
                f"the tracking server at {redacted(tracking_uri)} answered with an error: "
                f"{str(exc).splitlines()[0][:300]}"
            ) from None
        except OSError as exc:
            raise TrackingError(
                f"the tracking server at {redacted(tracking_uri)} could not be read "
                f"({type(exc).__name__})"
            ) from None
    if not found.run_id:
        raise _refuse("version", "the model version names no run: its lineage is unknown")
    if fmt == "lightgbm-skops":
        content, fmt = booster_text_from_skops(content), "lightgbm-text"
    import hashlib

    return Fetched(
        tracking_uri=redacted(tracking_uri),
        model=model,
        version=version,
        model_uri=str(found.source),
        model_id=getattr(found, "model_id", None),
        run_id=str(found.run_id),
        flavour=flavour,
        model_class=str(conf.get("model_class") or f"{flavour} model"),
        artifact_format=fmt,
        content=content,
        run=run,
        datasets=datasets,
        signature=_signature(mlmodel),
        environment=_environment(files, mlmodel, conf),
        files={"data": data, "sha256": hashlib.sha256(content).hexdigest()},
    )


def _node(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def booster_text_from_skops(content: bytes) -> bytes:
    """A LightGBM LGBMClassifier saved by skops holds its Booster's text model as a string in
    the file's schema: read it out, building nothing. Refused unless it is exactly that."""
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError):
        raise _refuse("version", "the LightGBM model is not a readable skops file") from None
    if (schema.get("__module__"), schema.get("__class__")) != (
        "lightgbm.sklearn",
        "LGBMClassifier",
    ):
        raise _refuse("version", "the LightGBM skops file does not hold an LGBMClassifier")
    booster = _node(schema, "content", "content", "_Booster")
    handle = _node(booster, "content", "content", "_handle")
    text: Any = None
    if isinstance(handle, dict) and handle.get("__loader__") == "JsonNode":
        with contextlib.suppress(TypeError, ValueError):
            text = json.loads(str(handle.get("content")))  # a JSON string: the model's text
    named = (booster or {}).get("__module__"), (booster or {}).get("__class__")
    if (
        named != ("lightgbm.basic", "Booster")
        or not isinstance(text, str)
        or not text.startswith("tree")
    ):
        raise _refuse("version", "the LightGBM skops file holds no Booster text model")
    return text.encode("utf-8")


# -- the data it was trained on -----------------------------------------------------------------


def mlflow_digest(frame: Any) -> str:
    """The digest MLflow gives a pandas dataset input (``mlflow.data.from_pandas``)."""
    from mlflow.data.digest_utils import compute_pandas_digest

    return str(compute_pandas_digest(frame))


def _training_inputs(datasets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    training = [d for d in datasets if (d.get("context") or "").lower() in TRAINING_CONTEXTS]
    return training or [d for d in datasets if not d.get("context")]


def _local_path(dataset: dict[str, Any]) -> Path | None:
    uri = (dataset.get("source") or {}).get("uri") or (dataset.get("source") or {}).get("path")
    if not isinstance(uri, str) or not uri:
        return None
    if uri.startswith("file://"):
        uri = urlsplit(uri).path
    elif re.match(r"^[a-z][a-z0-9+.-]*://", uri):
        return None
    return Path(uri).expanduser()


def _known_versions(session: Session, path: Path) -> list[DatasetVersion]:
    """govern's data versions of this very file, newest first."""
    try:
        target = path.resolve()
    except OSError:
        return []
    rows = session.exec(
        select(DatasetVersion)
        .where(col(DatasetVersion.path).endswith(path.name))
        .order_by(col(DatasetVersion.id).desc())
        .limit(50)
    ).all()
    return [r for r in rows if (Path(r.repo) / r.path).resolve() == target]


def verify_data(
    session: Session, fetched: Fetched, declared: DatasetVersion | None
) -> tuple[DatasetVersion | None, dict[str, Any]]:
    """The data version the model was trained on, and whether that is proven: ``verified``
    when its rows, read again from DVC, have the digest MLflow recorded for a training input."""
    inputs = _training_inputs(fetched.datasets)
    digests = {d["digest"] for d in inputs if d.get("digest")}
    recorded = [
        {k: d.get(k) for k in ("name", "digest", "source_type", "source", "context")}
        for d in inputs
    ]
    candidates: list[DatasetVersion] = [declared] if declared is not None else []
    if declared is None:
        for entry in inputs:
            local = _local_path(entry)
            if local is not None:
                candidates += _known_versions(session, local)
    for candidate in candidates:
        digest = mlflow_digest(service.read_dataset_frame(candidate))
        if digest in digests:
            return candidate, {
                "status": "verified",
                "reason": f"data version {candidate.name} v{candidate.version} (commit "
                f"{candidate.commit_sha[:12]}), read again from DVC, has the digest {digest} "
                "MLflow recorded for the run's training input",
                "mlflow_inputs": recorded,
                "govern_digest": digest,
            }
    if not inputs:
        reason = "the MLflow run logged no dataset input"
    elif declared is not None:
        reason = (
            f"the declared data version {declared.name} v{declared.version} does not have the "
            f"digest MLflow recorded ({', '.join(sorted(digests)) or 'none'}): it may not be "
            "the data the model was trained on"
        )
    elif candidates:
        reason = (
            "govern knows the file MLflow names, but none of its data versions has the digest "
            f"MLflow recorded ({', '.join(sorted(digests))})"
        )
    else:
        reason = (
            "the run's dataset input is not a file govern tracks with DVC (give dataset: in the "
            "description to name its data version)"
        )
    status = {"status": "unverified", "reason": reason, "mlflow_inputs": recorded}
    return declared, status


# -- registering it ----------------------------------------------------------------------------


def govern_name(mlflow_name: str, given: str | None) -> str:
    """The govern model's name: the one given, else MLflow's when it is a valid name."""
    if given is not None:
        return given
    if re.fullmatch(NAME_PATTERN, mlflow_name):
        return mlflow_name
    raise _refuse(
        "name",
        f"the MLflow name {mlflow_name!r} is not a valid govern model name "
        f"({NAME_PATTERN}): give name",
    )


def parse_description(data: Any) -> ImportDescription:
    try:
        return ImportDescription.model_validate(data)
    except ValidationError as exc:
        details = validation_details(exc.errors())
        raise InvalidInput(
            "invalid import description: " + field_list([d["field"] for d in details]),
            details=details,
        ) from None


def features_from_signature(fetched: Fetched) -> list[dict[str, Any]]:
    if not fetched.signature:
        raise _refuse(
            "describe.features",
            "the MLflow model has no signature: list its features in the description",
        )
    numeric = {"double", "float", "long", "integer"}
    return [
        {
            "name": c["name"],
            "type": "numeric" if c.get("type") in numeric else "categorical",
            "description": c["name"].replace("_", " "),
        }
        for c in fetched.signature
    ]


def seeds_of(fetched: Fetched, described: ImportDescription) -> dict[str, int] | None:
    """The seeds the run logged as params (random_state, seed, random_seed, *_seed), else the
    description's."""
    found: dict[str, int] = {}
    for key, text in (fetched.run.get("params") or {}).items():
        if key in SEED_PARAMS or key.endswith("_seed"):
            value = parse_param(text)
            if isinstance(value, int) and not isinstance(value, bool):
                found[key] = value
    return found or described.seeds


def estimator_params(fetched: Fetched) -> dict[str, Any]:
    return {k: json_safe(parse_param(v)) for k, v in (fetched.run.get("params") or {}).items()}


def mlflow_lineage(fetched: Fetched, verification: dict[str, Any]) -> dict[str, Any]:
    return {
        "tracking_uri": fetched.tracking_uri,
        "model": fetched.model,
        "version": fetched.version,
        "model_uri": fetched.model_uri,
        "model_id": fetched.model_id,
        "flavour": fetched.flavour,
        "model_class": fetched.model_class,
        "artifact_format": fetched.artifact_format,
        "data_file": fetched.files,
        **fetched.run,
        "datasets": fetched.datasets,
        "data_verification": verification,
    }


def import_version(
    *,
    session: Session,
    store: ArtifactStore,
    fetched: Fetched,
    name: str,
    described: ImportDescription,
    actor: str,
    max_unpacked: int,
    policy: DataPolicy,
) -> tuple[RegisteredModel, ModelVersion]:
    from lineage.external import register_external

    declared = (
        service.resolve_dataset_ref(session, described.dataset, actor, policy=policy)
        if described.dataset is not None
        else None
    )
    dataset, verification = verify_data(session, fetched, declared)
    if dataset is None:
        raise _refuse(
            "describe.dataset",
            "govern needs the data the model was trained on, to evaluate it and audit its "
            f"decisions, and cannot find it: {verification['reason']}",
        )
    seeds = seeds_of(fetched, described)
    if not seeds:
        raise _refuse(
            "describe.seeds",
            "the random seeds used in training are missing: the run logged no seed parameter "
            "(random_state, seed); log it, or give seeds: in the description",
        )
    run = fetched.run
    registration = {
        "description": described.description,
        "intended_use": described.intended_use,
        "dataset": {"id": dataset.id},
        "seeds": seeds,
        "target": described.target.model_dump(),
        "features": [f.model_dump() for f in described.features]
        if described.features
        else features_from_signature(fetched),
        "protected": [p.model_dump() for p in described.protected],
        "public_context": described.public_context,
        "decision": described.decision.model_dump(),
        **({"gate": described.gate.model_dump()} if described.gate else {}),
        "params": estimator_params(fetched),
        "environment": fetched.environment,
        "code": {
            "git_commit": run.get("git_commit"),
            "source_name": run.get("source_name"),
            "mlflow_run_id": fetched.run_id,
        },
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "artifact": {
            "format": fetched.artifact_format,
            "content_base64": base64.b64encode(fetched.content).decode("ascii"),
        },
    }
    return register_external(
        session=session,
        store=store,
        name=name,
        data=registration,
        actor=actor,
        max_unpacked=max_unpacked,
        policy=policy,
        source=SOURCE,
        extra={"mlflow": mlflow_lineage(fetched, verification)},
        in_sample=verification["status"] == "verified",
    )
