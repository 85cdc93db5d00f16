"""OpenLineage run events for govern's jobs: training runs, rebuilds and LDA searches.

Each job emits START when it begins, then COMPLETE or FAIL, through ``openlineage-python``'s
own transports, chosen in settings (``GOV_OPENLINEAGE_TRANSPORT``: off, the default; file, one
JSON event per line; http, to a receiver such as Marquez). The events carry:

* inputs: the DVC data version, named by its repository and path, with the standard version
  facet (its DVC md5), a schema facet (its columns) and a ``dvc`` facet (commit, rev, md5,
  sha256, rows);
* outputs: the model version, named ``models/{name}/versions/{v}``, with the version facet
  (its artifact's sha256) and a ``govern_model`` facet (artifact sha256, fingerprint, format,
  estimator);
* a ``govern_run`` run facet: what kind of job, its govern id, and for a rebuild its verdict.

Run ids are UUIDs derived from the job's govern id, so every event of one job has the same one.
Emitting never fails a job: govern's own records are the durable ones; a transport error is
logged and the job goes on.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import attr

if TYPE_CHECKING:
    from core.config import Settings

log = logging.getLogger("govern.openlineage")

PRODUCER = "https://github.com/govern/govern"
FACETS_SCHEMA = "https://govern.example/openlineage/facets/1-0-0.json"
RUN_NAMESPACE = uuid.UUID("8a6e1b0c-6f43-4c7e-9a3f-2f4c1d7e5b90")


def run_id(kind: str, govern_id: int | str) -> str:
    """The OpenLineage run id of one govern job: the same for its START and its end."""
    return str(uuid.uuid5(RUN_NAMESPACE, f"{kind}:{govern_id}"))


def _facet_classes() -> dict[str, Any]:
    """govern's custom facets, as the client's attrs classes (built on first use: the client is
    imported only when events are on)."""
    from openlineage.client.generated.base import DatasetFacet, RunFacet

    @attr.define
    class DvcDatasetFacet(DatasetFacet):
        repo: str
        path: str
        commit: str
        rev: str | None
        md5: str
        sha256: str
        rows: int | None

        @staticmethod
        def _get_schema() -> str:
            return f"{FACETS_SCHEMA}#/$defs/DvcDatasetFacet"

    @attr.define
    class GovernModelDatasetFacet(DatasetFacet):
        model: str
        version: int
        artifactSha256: str  # noqa: N815 - OpenLineage's camel case
        fingerprint: str
        format: str
        estimator: str

        @staticmethod
        def _get_schema() -> str:
            return f"{FACETS_SCHEMA}#/$defs/GovernModelDatasetFacet"

    @attr.define
    class GovernRunFacet(RunFacet):
        kind: str
        governId: str  # noqa: N815
        model: str | None = attr.field(default=None)
        verdict: str | None = attr.field(default=None)

        @staticmethod
        def _get_schema() -> str:
            return f"{FACETS_SCHEMA}#/$defs/GovernRunFacet"

    return {
        "dvc": DvcDatasetFacet,
        "model": GovernModelDatasetFacet,
        "run": GovernRunFacet,
    }


_CLASSES: dict[str, Any] = {}


def _classes() -> dict[str, Any]:
    if not _CLASSES:
        _CLASSES.update(_facet_classes())
    return _CLASSES


@dataclass(frozen=True)
class JobRef:
    """One govern job as OpenLineage names it."""

    kind: str  # training, rebuild, lda_search
    govern_id: int | str
    job_name: str
    model: str | None = None

    @property
    def run_id(self) -> str:
        return run_id(self.kind, self.govern_id)


class Emitter:
    """Sends run events through one of the client's transports."""

    KINDS: ClassVar[tuple[str, ...]] = ("off", "file", "http")

    def __init__(self, transport: Any, namespace: str) -> None:
        self.transport = transport
        self.namespace = namespace

    def emit(
        self,
        job: JobRef,
        state: str,
        *,
        inputs: Sequence[Mapping[str, Any]] | None = None,
        outputs: Sequence[Mapping[str, Any]] | None = None,
        error: str | None = None,
        verdict: str | None = None,
    ) -> None:
        try:
            self.transport.emit(self.event(job, state, inputs, outputs, error, verdict))
        except Exception as exc:  # a lineage receiver being down never fails a job
            log.warning(
                "OpenLineage %s event for %s %s not sent: %s: %s",
                state,
                job.kind,
                job.govern_id,
                type(exc).__name__,
                str(exc)[:300],
            )

    def event(
        self,
        job: JobRef,
        state: str,
        inputs: Sequence[Mapping[str, Any]] | None,
        outputs: Sequence[Mapping[str, Any]] | None,
        error: str | None = None,
        verdict: str | None = None,
    ) -> Any:
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import error_message_run, job_type_job

        facets: dict[str, Any] = {
            "govern_run": _classes()["run"](
                kind=job.kind,
                governId=str(job.govern_id),
                model=job.model,
                verdict=verdict,
                producer=PRODUCER,
            )
        }
        if error is not None:
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=error[:2000], programmingLanguage="python", producer=PRODUCER
            )
        return RunEvent(
            eventType=RunState[state],
            eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=job.run_id, facets=facets),
            job=Job(
                namespace=self.namespace,
                name=job.job_name,
                facets={
                    "jobType": job_type_job.JobTypeJobFacet(
                        processingType="BATCH",
                        integration="GOVERN",
                        jobType=job.kind.upper(),
                        producer=PRODUCER,
                    )
                },
            ),
            producer=PRODUCER,
            inputs=[data_input(d) for d in inputs or []],
            outputs=[model_output(self.namespace, m) for m in outputs or []],
        )


def data_input(dataset: Mapping[str, Any]) -> Any:
    """A data version as an input: ``dataset`` is its lineage record (``dataset_lineage``)."""
    from openlineage.client.event_v2 import InputDataset
    from openlineage.client.facet_v2 import dataset_version_dataset, schema_dataset

    repo = str(dataset["repo"])
    namespace = repo if "://" in repo else f"file://{socket.gethostname()}{repo}"
    columns = dataset.get("columns") or []
    facets: dict[str, Any] = {
        "version": dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=str(dataset["md5"]), producer=PRODUCER
        ),
        "dvc": _classes()["dvc"](
            repo=repo,
            path=str(dataset["path"]),
            commit=str(dataset["commit"]),
            rev=dataset.get("rev"),
            md5=str(dataset["md5"]),
            sha256=str(dataset["sha256"]),
            rows=dataset.get("row_count"),
            producer=PRODUCER,
        ),
    }
    fields = [
        schema_dataset.SchemaDatasetFacetFields(
            name=str(c["name"]), type=str(c.get("dtype") or c.get("type") or "unknown")
        )
        for c in columns
        if isinstance(c, Mapping) and c.get("name") is not None
    ]
    if fields:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(fields=fields, producer=PRODUCER)
    return InputDataset(namespace=namespace, name=str(dataset["path"]), facets=facets)


def model_output(namespace: str, model: Mapping[str, Any]) -> Any:
    """A model version as an output: ``model`` holds name, version, sha256, fingerprint,
    format and estimator."""
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.facet_v2 import dataset_version_dataset

    return OutputDataset(
        namespace=namespace,
        name=f"models/{model['name']}/versions/{model['version']}",
        facets={
            "version": dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=str(model["sha256"]), producer=PRODUCER
            ),
            "govern_model": _classes()["model"](
                model=str(model["name"]),
                version=int(model["version"]),
                artifactSha256=str(model["sha256"]),
                fingerprint=str(model["fingerprint"]),
                format=str(model["format"]),
                estimator=str(model["estimator"]),
                producer=PRODUCER,
            ),
        },
    )


def emitter_for(settings: Settings) -> Emitter | None:
    """The emitter the settings ask for, or None when events are off."""
    kind = settings.openlineage_transport
    if kind == "off":
        return None
    if kind == "file":
        from openlineage.client.transport.file import FileConfig, FileTransport

        path = settings.openlineage_file or settings.var_dir / "openlineage" / "events.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        transport: Any = FileTransport(FileConfig(log_file_path=str(path), append=True))
    else:
        from openlineage.client.transport.http import HttpConfig, HttpTransport

        assert settings.openlineage_url is not None  # the settings check it
        config: dict[str, Any] = {
            "url": settings.openlineage_url,
            "endpoint": settings.openlineage_endpoint,
            "timeout": settings.openlineage_timeout_s,
            "retry": {"total": 2, "connect": 2, "read": 2},
        }
        if settings.openlineage_api_key is not None:
            config["auth"] = {
                "type": "api_key",
                "apiKey": settings.openlineage_api_key.get_secret_value(),
            }
        transport = HttpTransport(HttpConfig.from_dict(config))
    return Emitter(transport, settings.openlineage_namespace)


def model_record(name: str, version: Any) -> dict[str, Any]:
    """A registered ``ModelVersion`` as ``model_output`` takes it."""
    artifact = (version.lineage or {}).get("artifact") or {}
    return {
        "name": name,
        "version": version.version,
        "sha256": version.artifact_sha256,
        "fingerprint": version.fingerprint,
        "format": artifact.get("format", "unknown"),
        "estimator": version.estimator_class,
    }
