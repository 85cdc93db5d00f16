"""Rebuild a model version from nothing but its recorded lineage, and say whether it is the same.

1. Fetch the exact data version through DVC (from the remote when the local cache lost it).
2. Check its md5 and sha256 against the lineage record.
3. Re-run the recorded resolved spec, with its recorded seeds, in a fresh process.
4. Compare: ``identical`` (same fingerprint and the same artifact bytes), ``equivalent``
   (different bytes, but every validation row and every logged decision of the version gets the
   same label), ``diverged`` (with how many and examples), or ``failed`` (with the reason:
   data missing or altered, revision gone, estimator unavailable, training failed).

The report also holds the environment diff (every package whose version differs, Python,
platform), the spec and params diff, and the duration beside the original training's. A rebuild
of one decision also replays that decision on the rebuilt model.

A rebuild is a job like a training run: its row holds status, progress and the report, and the
job itself never raises.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from core.config import Settings
from core.db import make_engine, session_factory, transaction, utcnow
from core.errors import GovernanceError, NotFound
from core.pagination import Page
from lineage import datasets, openlineage_events
from lineage.artifacts import ArtifactStore
from lineage.data_sources import DatasetError, is_url
from lineage.environment import diff_environments
from lineage.executor import worker_id
from lineage.fresh import ZYGOTE, FreshProcessError, JobStopped
from lineage.input_schema import InputSchema, frame_from_table, positive_proba, to_frame
from lineage.jobs import (
    ACTIVE,
    CANCELLED_BY_REQUEST,
    abandoned_jobs,
    claim_job,
    finish_job,
    record_stop,
    stop_requested,
    update_job,
)
from lineage.models import ModelVersion, Rebuild, RegisteredModel, RunStatus
from lineage.spec import ESTIMATORS, import_estimator, parse_spec, spec_hash
from lineage.training import binary_target, indices_digest, split_frame
from rebuild import imported
from serving.lookups import get_decision
from serving.models import DecisionRecord as D

log = logging.getLogger("govern.rebuild")

Progress = Callable[[float, str], None]
EXAMPLES = 10
CHUNK = 5000

IDENTICAL, EQUIVALENT, DIVERGED, FAILED = "identical", "equivalent", "diverged", "failed"


class RebuildFailed(Exception):
    def __init__(self, code: str, message: str, **facts: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.facts = facts


# Jobs -------------------------------------------------------------------------------------------


def create_rebuild(
    *,
    session: Session,
    model: RegisteredModel,
    version: ModelVersion,
    actor: str,
    executor: str,
    decision_id: str | None = None,
) -> tuple[Rebuild, bool]:
    """A new queued rebuild, or the one of this version (or decision) already queued or running:
    (the job, whether it is new). A unique index over active rebuilds settles a race between
    two requests, on both databases."""
    assert version.id is not None
    active = _active_rebuild(session, version.id, decision_id)
    if active is not None:
        return active, False
    rebuild = Rebuild(
        model_name=model.name,
        version=version.version,
        model_version_id=version.id,
        decision_id=decision_id,
        status=RunStatus.queued.value,
        message="queued",
        executor=executor,
        worker=worker_id(),
        created_by=actor,
    )
    try:
        with session.begin_nested():
            session.add(rebuild)
    except IntegrityError:
        active = _active_rebuild(session, version.id, decision_id)
        if active is None:
            raise
        return active, False
    return rebuild, True


def _active_rebuild(session: Session, version_id: int, decision_id: str | None) -> Rebuild | None:
    query = select(Rebuild).where(
        Rebuild.model_version_id == version_id, col(Rebuild.status).in_(ACTIVE)
    )
    query = query.where(
        col(Rebuild.decision_id).is_(None)
        if decision_id is None
        else Rebuild.decision_id == decision_id
    )
    return session.exec(query.order_by(col(Rebuild.id).desc()).limit(1)).first()


def get_rebuild(session: Session, rebuild_id: int) -> Rebuild:
    found = session.get(Rebuild, rebuild_id)
    if found is None:
        raise NotFound(f"no rebuild with id {rebuild_id}", details={"id": rebuild_id})
    return found


def list_rebuilds(session: Session, version: ModelVersion, page: Page) -> list[Rebuild]:
    query = (
        select(Rebuild)
        .where(Rebuild.model_version_id == version.id)
        .order_by(col(Rebuild.id).desc())
        .limit(page.limit)
    )
    if page.cursor is not None:
        query = query.where(col(Rebuild.id) < page.cursor)
    return list(session.exec(query).all())


def fail_interrupted_rebuilds(factory: sessionmaker[Session]) -> int:
    """Rebuilds left queued or running by a process on this host that no longer exists: failed,
    with the reason, never lost."""
    message = "interrupted by a restart of the process running it"
    with transaction(factory) as session:
        rows = abandoned_jobs(session, Rebuild)
        for row in rows:
            cancelled = row.status == RunStatus.cancelling.value
            row.status = (RunStatus.cancelled if cancelled else RunStatus.failed).value
            row.verdict = FAILED
            row.message = (
                "cancelled: the process running it stopped" if cancelled else f"failed: {message}"
            )
            row.report = {
                "model": row.model_name,
                "version": row.version,
                "decision_id": row.decision_id,
                "verdict": FAILED,
                "reason": {"code": "interrupted", "message": message},
            }
            row.finished_at = utcnow()
            session.add(row)
    return len(rows)


def _update(factory: sessionmaker[Session], rebuild_id: int, **fields: Any) -> None:
    update_job(factory, Rebuild, rebuild_id, **fields)


def execute_rebuild(settings: Settings, rebuild_id: int, progress: Progress | None = None) -> None:
    """The job. Never raises for a failure of the rebuild: the verdict records it instead."""
    engine = make_engine(settings)
    try:
        factory = session_factory(engine)
        tell = progress or (lambda _f, _m: None)

        def report(fraction: float, message: str) -> None:
            _update(factory, rebuild_id, progress=fraction, message=message)
            tell(fraction, message)

        if not claim_job(factory, Rebuild, rebuild_id, worker_id(), utcnow()):
            return  # cancelled while it waited in the queue
        events = openlineage_events.emitter_for(settings)
        ref, inputs, outputs = _lineage_event_parts(factory, rebuild_id)
        if events is not None:
            events.emit(ref, "START", inputs=inputs)
        result = run(factory, settings, rebuild_id, report)
        if events is not None:
            _emit_end(events, ref, inputs, outputs, result)
        if result.get("stopped"):
            code, message = result["stopped"]["code"], result["stopped"]["message"]
            record_stop(factory, Rebuild, rebuild_id, code, message, verdict=FAILED, report=result)
            tell(1.0, message)
            return
        verdict = result["verdict"]
        summary = summarize(result)
        with transaction(factory) as session:
            finished = finish_job(
                session,
                Rebuild,
                rebuild_id,
                status=RunStatus.failed.value if verdict == FAILED else RunStatus.succeeded.value,
                progress=1.0,
                message=summary[:500],
                verdict=verdict,
                report=result,
                finished_at=utcnow(),
            )
        if not finished:  # cancelled just as it finished: the cancel stands
            record_stop(factory, Rebuild, rebuild_id, "cancelled", CANCELLED_BY_REQUEST)
        tell(1.0, summary)
    except Exception as exc:  # the database itself failed; record it if we still can
        log.exception("rebuild %s could not be recorded", rebuild_id)
        try:
            _update(
                factory,
                rebuild_id,
                status=RunStatus.failed.value,
                message=f"failed: {exc}"[:500],
                verdict=FAILED,
                finished_at=utcnow(),
            )
        except Exception:
            log.exception("rebuild %s: could not record the failure either", rebuild_id)
    finally:
        engine.dispose()


def _lineage_event_parts(
    factory: sessionmaker[Session], rebuild_id: int
) -> tuple[openlineage_events.JobRef, list[dict[str, Any]], list[dict[str, Any]]]:
    """The rebuild as OpenLineage names it: its job, the data version it re-reads, and the
    model version it checks."""
    with transaction(factory) as session:
        rebuild = session.get(Rebuild, rebuild_id)
        assert rebuild is not None
        version = session.get(ModelVersion, rebuild.model_version_id)
        assert version is not None
        model = session.get(RegisteredModel, version.model_id)
        assert model is not None
        name = f"rebuild.{model.name}.v{version.version}"
        ref = openlineage_events.JobRef("rebuild", rebuild_id, name, model.name)
        dataset = (version.lineage or {}).get("dataset")
        inputs = [dataset] if isinstance(dataset, dict) and dataset.get("md5") else []
        return ref, inputs, [openlineage_events.model_record(model.name, version)]


def _emit_end(
    events: openlineage_events.Emitter,
    ref: openlineage_events.JobRef,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    result: dict[str, Any],
) -> None:
    verdict = result.get("verdict")
    if result.get("stopped"):
        state = "ABORT" if result["stopped"]["code"] == "cancelled" else "FAIL"
        events.emit(ref, state, inputs=inputs, error=result["stopped"]["message"])
    elif verdict == FAILED:
        reason = (result.get("reason") or {}).get("message") or "failed"
        events.emit(ref, "FAIL", inputs=inputs, error=reason, verdict=verdict)
    else:
        events.emit(ref, "COMPLETE", inputs=inputs, outputs=outputs, verdict=verdict)


def summarize(result: dict[str, Any]) -> str:
    verdict = result["verdict"]
    name = f"{result['model']} v{result['version']}"
    timing = ""
    if result.get("duration_s") is not None:
        timing = f" in {result['duration_s']:.1f}s"
        if result.get("original_duration_s"):
            timing += f" (original training {result['original_duration_s']:.1f}s)"
    if verdict == FAILED:
        return f"{name}: failed{timing}: {result['reason']['message']}"
    if verdict == IDENTICAL:
        return f"{name}: identical{timing}: same fingerprint and artifact bytes"
    changed = result["predictions"]
    return (
        f"{name}: {verdict}{timing}: {changed['validation']['changed']} of "
        f"{changed['validation']['rows']} validation rows and {changed['decisions']['changed']} "
        f"of {changed['decisions']['rows']} logged decisions change label"
    )


# The rebuild itself -----------------------------------------------------------------------------


def run(
    factory: sessionmaker[Session], settings: Settings, rebuild_id: int, progress: Progress
) -> dict[str, Any]:
    started = time.perf_counter()
    deadline = time.monotonic() + settings.job_timeout_s
    with transaction(factory) as session:
        rebuild = get_rebuild(session, rebuild_id)
        version = session.get(ModelVersion, rebuild.model_version_id)
        assert version is not None
        session.expunge(version)
        session.expunge(rebuild)
        decision_id = rebuild.decision_id
    lineage = version.lineage
    result: dict[str, Any] = {
        "model": rebuild.model_name,
        "version": version.version,
        "decision_id": decision_id,
        "original_duration_s": (lineage.get("timing") or {}).get("duration_s"),
    }
    try:
        stop = Stop(deadline, partial(stop_requested, factory, Rebuild, rebuild_id))
        result.update(
            _rebuild(factory, settings, rebuild.model_name, version, decision_id, progress, stop)
        )
    except RebuildFailed as exc:
        result.update(exc.facts)
        result["verdict"] = FAILED
        result["reason"] = {"code": exc.code, "message": exc.message}
    except JobStopped as exc:
        message = exc.message
        if exc.code == "timeout":
            message = f"stopped after {settings.job_timeout_s:g} s (GOV_JOB_TIMEOUT_S)"
        result["verdict"] = FAILED
        result["reason"] = {"code": exc.code, "message": message}
        result["stopped"] = {"code": exc.code, "message": message}
    except Exception as exc:
        log.exception("rebuild %s failed", rebuild_id)
        result["verdict"] = FAILED
        result["reason"] = {"code": "error", "message": f"{type(exc).__name__}: {exc}"}
    result["duration_s"] = time.perf_counter() - started
    original = result.get("original_duration_s")
    result["duration_ratio"] = result["duration_s"] / original if original else None
    return result


def _rebuild(
    factory: sessionmaker[Session],
    settings: Settings,
    model_name: str,
    version: ModelVersion,
    decision_id: str | None,
    progress: Progress,
    stop: Stop,
) -> dict[str, Any]:
    lineage = version.lineage
    if lineage.get("source") == "mlflow":
        return _rebuild_imported(factory, settings, model_name, version, decision_id, progress)
    if lineage.get("source") == "external" or "spec" not in lineage or version.run_id is None:
        raise RebuildFailed(
            "not_rebuildable",
            "this version was trained outside govern: its lineage records no spec to re-run",
        )
    resolved = lineage["spec"]
    recorded_env = dict((lineage.get("environment") or {}).get("env") or {})
    ZYGOTE.start(recorded_env)  # a clean interpreter imports the training code meanwhile
    progress(0.05, f"fetching {lineage['dataset']['name']} at {lineage['dataset']['commit'][:12]}")
    snapshot, data = fetch_data(lineage["dataset"])
    facts: dict[str, Any] = {"data": data}
    _check_estimator(resolved, facts)

    progress(0.20, "training the recorded spec in a fresh process")
    fitted = fit_in_fresh_process(
        recorded_env, resolved, snapshot.content, snapshot.format, facts, stop, progress
    )
    facts["environment"] = diff_environments(
        lineage.get("environment") or {}, fitted["environment"]
    )
    facts["spec"] = spec_diff(lineage, fitted)
    facts["training"] = {"fit_s": fitted["fit_s"], "original_fit_s": lineage["timing"].get("fit_s")}

    progress(0.80, "comparing with the registered model")
    artifact = fitted["artifact"]
    rebuilt_sha = hashlib.sha256(artifact).hexdigest()
    facts["artifact"] = {
        "recorded": {"sha256": version.artifact_sha256, "fingerprint": version.fingerprint},
        "rebuilt": {"sha256": rebuilt_sha, "fingerprint": fitted["fingerprint"]},
        "bytes_identical": rebuilt_sha == version.artifact_sha256,
        "fingerprint_identical": fitted["fingerprint"] == version.fingerprint,
    }
    identical = facts["artifact"]["bytes_identical"] and facts["artifact"]["fingerprint_identical"]
    if identical and decision_id is None:
        facts["verdict"] = IDENTICAL
        return facts
    # Bytes produced a moment ago by our own worker process, never read back from storage.
    rebuilt = pickle.loads(artifact)  # noqa: S301
    schema = InputSchema.from_document(version.input_schema)
    if decision_id is not None:
        facts["decision"] = rescore_on_rebuilt(factory, decision_id, rebuilt, schema)
    if identical:
        facts["verdict"] = IDENTICAL
        return facts
    frame = snapshot.frame()
    spec = parse_spec(resolved)
    original = ArtifactStore(settings.artifacts).load_model(version.artifact_sha256)
    facts["predictions"] = {
        "validation": compare_validation(spec, frame, schema, lineage, original, rebuilt),
        "decisions": compare_decisions(factory, model_name, version.version, schema, rebuilt),
    }
    facts["verdict"] = _by_predictions(facts["predictions"])
    return facts


def _rebuild_imported(
    factory: sessionmaker[Session],
    settings: Settings,
    model_name: str,
    version: ModelVersion,
    decision_id: str | None,
    progress: Progress,
) -> dict[str, Any]:
    """An MLflow import: its run's training re-run on its verified data (``rebuild.imported``)."""
    lineage = version.lineage
    progress(0.05, f"fetching {lineage['dataset']['name']} at {lineage['dataset']['commit'][:12]}")
    snapshot, data = fetch_data(lineage["dataset"])
    facts: dict[str, Any] = {"data": data}
    frame = snapshot.frame()
    schema = InputSchema.from_document(version.input_schema)
    store = ArtifactStore(settings.artifacts)
    progress(0.20, "re-running the training the MLflow run recorded")
    try:
        found, rebuilt = imported.rebuild_imported(
            lineage, schema, frame, store, version.fingerprint, version.artifact_sha256
        )
    except imported.NotRebuildable as exc:
        raise RebuildFailed("not_rebuildable", exc.message, data=data) from None
    facts.update(found)
    if decision_id is not None:
        facts["decision"] = rescore_on_rebuilt(factory, decision_id, rebuilt, schema)
    artifact = facts["artifact"]
    if artifact["fingerprint_identical"] and artifact["bytes_identical"] is not False:
        facts["verdict"] = IDENTICAL
        return facts
    progress(0.80, "scoring every row and logged decision with both models")
    original = store.load_model(version.artifact_sha256)
    facts["predictions"] = {
        "validation": imported.compare_all_rows(frame, schema, original, rebuilt),
        "decisions": compare_decisions(factory, model_name, version.version, schema, rebuilt),
    }
    facts["verdict"] = _by_predictions(facts["predictions"])
    return facts


def _by_predictions(predictions: dict[str, Any]) -> str:
    """Artifacts that differ: equivalent when no row and no logged decision changes label."""
    changed = sum(p["changed"] for p in predictions.values())
    return EQUIVALENT if changed == 0 else DIVERGED


def _local_cache_has(repo: str, md5: str) -> bool | None:
    # A recorded md5 that is not one (a row older than the check at registration) names no
    # cache file: it must not become a path to ask the disk about.
    if is_url(repo) or not re.fullmatch(r"[0-9a-f]{32}", md5):
        return None
    cache = Path(repo) / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    return cache.exists()


def fetch_data(recorded: dict[str, Any]) -> tuple[datasets.Snapshot, dict[str, Any]]:
    """The recorded data version's bytes, and the data check (both hashes, matched or not)."""
    expected = {"md5": recorded["md5"], "sha256": recorded["sha256"]}
    check: dict[str, Any] = {
        "repo": recorded["repo"],
        "path": recorded["path"],
        "commit": recorded["commit"],
        "recorded": expected,
        "in_local_cache": _local_cache_has(recorded["repo"], recorded["md5"]),
    }
    try:
        snapshot = datasets.read_snapshot(recorded["repo"], recorded["path"], recorded["commit"])
    except datasets.DataMismatch as exc:
        check.update(read=exc.read, matched=False)
        raise RebuildFailed(
            "data_mismatch",
            f"the data read for {recorded['path']} at {recorded['commit'][:12]} is not the "
            f"recorded version: md5 {exc.read['md5']} (recorded {expected['md5']}), sha256 "
            f"{exc.read['sha256']} (recorded {expected['sha256']})",
            data=check,
        ) from None
    except DatasetError as exc:
        check.update(read=None, matched=False)
        code = {"data_unavailable": "data_missing"}.get(exc.code, "data_unreadable")
        if exc.field_name == "rev":
            code = "revision_gone"
        raise RebuildFailed(code, exc.message, data=check) from None
    read = {"md5": snapshot.md5, "sha256": snapshot.sha256}
    check.update(read=read, matched=read == expected)
    if not check["matched"]:
        raise RebuildFailed(
            "data_mismatch",
            f"the data at {recorded['commit'][:12]} hashes to md5 {read['md5']}, sha256 "
            f"{read['sha256']}; the lineage recorded md5 {expected['md5']}, sha256 "
            f"{expected['sha256']}",
            data=check,
        )
    return snapshot, check


def _check_estimator(resolved: dict[str, Any], facts: dict[str, Any]) -> None:
    class_path = str((resolved.get("estimator") or {}).get("class"))
    if class_path not in ESTIMATORS:
        raise RebuildFailed(
            "estimator_unavailable",
            f"the recorded estimator {class_path} is not one this installation can load "
            f"(known: {', '.join(sorted(ESTIMATORS))})",
            **facts,
        )
    try:
        import_estimator(class_path)
    except (ImportError, AttributeError) as exc:
        raise RebuildFailed(
            "estimator_unavailable",
            f"the recorded estimator {class_path} can no longer be imported: {exc}",
            **facts,
        ) from None


@dataclass(frozen=True)
class Stop:
    """When a rebuild's fit must be killed: its deadline, and a check for a cancel."""

    deadline: float
    requested: Callable[[], str | None]


def fit_in_fresh_process(
    recorded_env: dict[str, str],
    resolved: dict[str, Any],
    content: bytes,
    fmt: str,
    facts: dict[str, Any],
    stop: Stop,
    progress: Progress,
) -> dict[str, Any]:
    try:
        fitted: dict[str, Any] = ZYGOTE.run(
            "rebuild",
            recorded_env,
            (resolved, content, fmt),
            deadline=stop.deadline,
            should_stop=stop.requested,
            progress=progress,
        )
    except (FreshProcessError, GovernanceError) as exc:
        raise RebuildFailed("training_failed", f"training failed: {exc}", **facts) from None
    return fitted


def spec_diff(lineage: dict[str, Any], fitted: dict[str, Any]) -> dict[str, Any]:
    recorded_hash = lineage.get("spec_sha256")
    current_hash = spec_hash(lineage["spec"])
    recorded = (lineage.get("estimator") or {}).get("params") or {}
    rebuilt = fitted["params"]
    params = {
        name: {"recorded": recorded.get(name), "rebuilt": rebuilt.get(name)}
        for name in sorted(set(recorded) | set(rebuilt))
        if recorded.get(name) != rebuilt.get(name)
    }
    return {
        "spec_sha256": {"recorded": recorded_hash, "now": current_hash},
        "spec_matches_record": recorded_hash == current_hash,
        "params": params,
        "seeds": lineage["spec"].get("seeds"),
    }


def _labels(scores: Any, schema: InputSchema) -> list[str]:
    return [str(schema.label_for(s)) for s in scores]


def compare_validation(
    spec: Any,
    frame: pd.DataFrame,
    schema: InputSchema,
    lineage: dict[str, Any],
    original: Any,
    rebuilt: Any,
) -> dict[str, Any]:
    y, _classes = binary_target(spec, frame)
    _train_idx, valid_idx = split_frame(spec, frame, y)
    same_split = indices_digest(valid_idx) == lineage["split"].get("validation_indices_sha256")
    X = frame_from_table(schema, frame.iloc[valid_idx][spec.feature_names])
    before = positive_proba(original, X, schema)
    after = positive_proba(rebuilt, X, schema)
    old, new = _labels(before, schema), _labels(after, schema)
    changed = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
    return {
        "rows": len(valid_idx),
        "split_matches_record": same_split,
        "changed": len(changed),
        "max_score_difference": float(np.max(np.abs(after - before))) if len(X) else 0.0,
        "examples": [
            {
                "row": int(valid_idx[i]),
                "recorded": {"label": old[i], "score": float(before[i])},
                "rebuilt": {"label": new[i], "score": float(after[i])},
            }
            for i in changed[:EXAMPLES]
        ],
    }


def _logged(
    factory: sessionmaker[Session], model: str, version: int
) -> Iterator[list[tuple[str, dict[str, Any], str | None, float | None]]]:
    last = 0
    while True:
        with transaction(factory) as session:
            rows = session.execute(
                sa.select(
                    col(D.id), col(D.decision_id), col(D.features), col(D.label), col(D.score)
                )
                .where(
                    col(D.model) == model,
                    col(D.version) == version,
                    col(D.kind).in_(["decision", "shadow"]),
                    col(D.features).is_not(None),
                    col(D.id) > last,
                )
                .order_by(col(D.id))
                .limit(CHUNK)
            ).all()
        if not rows:
            return
        last = int(rows[-1][0] or 0)
        yield [(r[1], dict(r[2] or {}), r[3], r[4]) for r in rows]


def compare_decisions(
    factory: sessionmaker[Session], model: str, version: int, schema: InputSchema, rebuilt: Any
) -> dict[str, Any]:
    """Every logged decision of the version, scored again by the rebuilt model."""
    rows = changed = 0
    examples: list[dict[str, Any]] = []
    for chunk in _logged(factory, model, version):
        scores = positive_proba(rebuilt, to_frame(schema, [c[1] for c in chunk]), schema)
        for (decision_id, _features, label, score), new_score, new_label in zip(
            chunk, scores, _labels(scores, schema), strict=True
        ):
            rows += 1
            if str(label) != new_label:
                changed += 1
                if len(examples) < EXAMPLES:
                    examples.append(
                        {
                            "decision_id": decision_id,
                            "logged": {"label": label, "score": score},
                            "rebuilt": {"label": new_label, "score": float(new_score)},
                        }
                    )
    return {"rows": rows, "changed": changed, "examples": examples}


def rescore_on_rebuilt(
    factory: sessionmaker[Session], decision_id: str, rebuilt: Any, schema: InputSchema
) -> dict[str, Any]:
    with transaction(factory) as session:
        record = get_decision(session, decision_id)
        content = json.loads(record.payload or "{}")
    score = float(positive_proba(rebuilt, to_frame(schema, [content["features"]]), schema)[0])
    label = schema.label_for(score)
    return {
        "decision_id": decision_id,
        "logged": {"label": content.get("label"), "score": content.get("score")},
        "rebuilt": {"label": label, "score": score},
        "replays_identically": score == content.get("score")
        and str(label) == str(content.get("label")),
    }
